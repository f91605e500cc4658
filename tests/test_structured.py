"""CoNLL-U sentences (format: conllu) and the word-level templates of templates/structured/.

Real data: tests/data/conllu/ (UD_Italian-VIT with multiword tokens, UD_Estonian-EWT with an
empty node; SOURCE.md says where they come from) and ../shared/data/ud (24 languages).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import conllu
import pyarrow as pa
import pytest

from tests.conftest import ROOT, shared_data
from udfs import conllu_sentences
from udfs.conllu_sentences import (
    SENTENCE_SCHEMA,
    comment_key,
    file_stem,
    parse_conllu,
    sentence_batches,
)
from udfs.records import RecordError
from udfs.render_batches import (
    CORRUPT_COLUMN,
    CORRUPT_DETAIL,
    CORRUPT_REASON,
    FILE_COLUMN,
    RenderPlan,
    decode_row,
    render_batches,
)
from udfs.structured import format_tags, parse_tags
from udfs.template_files import load_template_file
from udfs.templating import (
    CompiledTemplate,
    RenderError,
    TemplateSpec,
    compile_template,
    mark_blanks,
    render,
)

DATA = ROOT / "tests" / "data" / "conllu"
VIT = DATA / "it_vit-excerpt.conllu"
EWT = DATA / "et_ewt-excerpt.conllu"
REAL_FILES = (VIT, EWT)


def template(name: str) -> CompiledTemplate:
    spec = load_template_file(ROOT / "templates" / "structured" / f"{name}.jinja")[0]
    assert spec.template_id == f"structured/{name}"
    return compile_template(spec)


POS, LEMMAS, HEAD = template("pos_tagging"), template("lemmas"), template("head_of_word")


def arrow_rows(text: str, path: str) -> list[dict[str, Any]]:
    batch = pa.RecordBatch.from_pydict({"path": [path], "text": [text]})
    out = list(conllu_sentences.sentence_batches([batch]))
    assert all(b.schema.equals(SENTENCE_SCHEMA) for b in out)
    return [row for b in out for row in b.to_pylist()]


def records(path: Path) -> list[dict[str, Any]]:
    """The file's sentences as the renderer hands them to templates (Arrow rows, reader
    columns dropped, blanks marked)."""
    rows = arrow_rows(path.read_text(encoding="utf-8"), f"file://{path}")
    return [mark_blanks(decode_row(False, row)) for row in rows]


def sentences(text: str, path: str = "file:///data/x.conllu") -> list[dict[str, Any]]:
    return list(parse_conllu(text, path))


# --- the real files ------------------------------------------------------------------------


def test_real_files_parse_into_syntactic_words() -> None:
    vit = sentences(VIT.read_text(encoding="utf-8"))
    ewt = sentences(EWT.read_text(encoding="utf-8"))
    assert [s["sent_id"] for s in vit] == ["VIT-2", "VIT-318", "VIT-591"]
    assert [s["sent_id"] for s in ewt] == ["aia_foorum_37", "ewtb2_000035_15"]
    assert [len(s["tokens"]) for s in vit + ewt] == [59, 42, 13, 10, 7]
    assert [s["line"] for s in vit] == [1, 69, 117]
    for sentence in vit + ewt:
        assert CORRUPT_COLUMN not in sentence
        size = len(sentence["tokens"])
        for field in ("lemmas", "upos", "xpos", "feats", "heads", "deprels"):
            assert len(sentence[field]) == size, (sentence["sent_id"], field)
        assert sentence["heads"].count(0) == 1
        assert all(0 <= head <= size for head in sentence["heads"])


def test_multiword_tokens_are_split_into_their_words() -> None:
    first = sentences(VIT.read_text(encoding="utf-8"))[0]
    words = first["tokens"]
    assert words[:2] == ["In", "gli"]  # 1-2 Negli
    assert words[6:8] == ["di", "i"]  # 7-8 dei
    assert words[16:18] == ["da", "l'"]  # 17-18 dall'
    assert "Negli" not in words and "dei" not in words
    assert first["multiword_tokens"] == [
        "1-2 Negli",
        "7-8 dei",
        "17-18 dall'",
        "29-30 dalle",
        "33-34 ai",
        "46-47 dei",
    ]
    assert first["lemmas"][6:8] == ["di", "il"]
    assert first["upos"][6:8] == ["ADP", "DET"]
    assert first["text"].startswith("Negli ultimi anni")


def test_empty_nodes_are_not_words() -> None:
    gapped = sentences(EWT.read_text(encoding="utf-8"))[1]
    assert gapped["tokens"] == ["Ja", "paari", "aasta", "pärast", "rôômalt", "maasikatele", "..."]
    assert "panna" not in gapped["tokens"]  # 5.1, the elided verb
    assert gapped["heads"] == [3, 3, 0, 3, 3, 3, 3]
    assert gapped["feats"][4] == "Typo=Yes" and gapped["feats"][0] == "_"


def test_words_agree_with_the_conllu_library() -> None:
    for path in REAL_FILES:
        text = path.read_text(encoding="utf-8")
        ours = sentences(text)
        theirs = conllu.parse(text)
        assert len(ours) == len(theirs)
        for mine, other in zip(ours, theirs, strict=True):
            words = [token for token in other if isinstance(token["id"], int)]
            assert mine["sent_id"] == other.metadata["sent_id"]
            assert mine["tokens"] == [token["form"] for token in words]
            assert mine["upos"] == [token["upos"] for token in words]
            assert mine["heads"] == [token["head"] for token in words]
            assert mine["deprels"] == [token["deprel"] for token in words]


def test_pos_tagging_round_trips_on_the_real_files() -> None:
    count = 0
    for path in REAL_FILES:
        for record in records(path):
            instruction, response = render(POS, record, record["sent_id"])
            assert parse_tags(response) == list(zip(record["tokens"], record["upos"], strict=True))
            assert response == format_tags(record["tokens"], record["upos"])
            assert f"Sentence: {record['text']}" in instruction
            count += 1
    assert count == 5


def test_lemmas_render_on_the_real_files() -> None:
    for path in REAL_FILES:
        for record in records(path):
            _, response = render(LEMMAS, record, record["sent_id"])
            assert parse_tags(response) == list(
                zip(record["tokens"], record["lemmas"], strict=True)
            )


def expected_head(record: dict[str, Any], index: int) -> str:
    head = record["heads"][index]
    if head == 0:
        return "root"
    word = record["tokens"][head - 1]
    repeated = record["tokens"].count(word) > 1 or word == "root"
    return f"{word} (word {head})" if repeated else word


def test_head_of_word_answers_the_word_at_heads_i() -> None:
    asked = set()
    for path in REAL_FILES:
        for record in records(path):
            for salt in range(25):
                instruction, response = render(HEAD, record, f"{record['sent_id']}/{salt}")
                number = int(re.search(r"\(word (\d+)\) in its", instruction).group(1))
                index = number - 1
                assert f'head of "{record["tokens"][index]}" (word {number})' in instruction
                assert record["upos"][index] != "PUNCT"
                assert response == expected_head(record, index)
                asked.add((record["sent_id"], index))
    assert len(asked) > 40  # the choice moves with the record key, not always one word
    # The same record key always asks about the same word.
    record = records(VIT)[0]
    assert render(HEAD, record, "k") == render(HEAD, record, "k")


def test_head_answer_names_the_position_of_a_repeated_head_word() -> None:
    record = mark_blanks(
        {
            "text": "di di",
            "tokens": ["di", "di", "casa"],
            "upos": ["ADP", "ADP", "PUNCT"],
            "heads": [2, 0, 2],
        }
    )
    answers = {render(HEAD, record, str(salt))[1] for salt in range(30)}
    assert answers == {"di (word 2)", "root"}


def test_unannotated_tags_and_lemmas_are_rejected_not_taught() -> None:
    record = mark_blanks({"text": None, "tokens": ["a", "_"], "upos": ["X", "_"]})
    with pytest.raises(RenderError) as caught:
        render(POS, record)
    assert caught.value.reason == "empty_response"
    no_lemmas = mark_blanks({"text": "a b", "tokens": ["a", "b"], "lemmas": ["_", "_"]})
    with pytest.raises(RenderError):
        render(LEMMAS, no_lemmas)
    # `_` as the word itself may have `_` as its lemma.
    underscore = mark_blanks({"text": None, "tokens": ["_"], "lemmas": ["_"]})
    instruction, response = render(LEMMAS, underscore)
    assert parse_tags(response) == [("_", "_")]
    assert "Sentence: _" in instruction  # no text: the words joined by spaces


# --- every UD record of the shared data ----------------------------------------------------


def test_pos_tagging_round_trips_on_24_languages(report: Any) -> None:
    folder = shared_data("ud")
    count, languages = 0, set()
    for path in sorted(folder.glob("*.jsonl")):
        for line in path.open(encoding="utf-8"):
            record = json.loads(line)
            _, response = render(POS, mark_blanks(record), record["id"])
            pairs = parse_tags(response)
            assert pairs == list(zip(record["tokens"], record["upos"], strict=True)), (
                path.name,
                record["id"],
            )
            assert len(pairs) == len(record["tokens"])
            count += 1
            languages.add(record["lang"])
    assert count == 9317
    assert len(languages) == 24
    report(f"structured/pos_tagging: {count} UD records in {len(languages)} languages round-trip")


# --- the response format -------------------------------------------------------------------


def test_the_format_survives_hostile_words() -> None:
    words = ["học sinh", "a/b", "|", "x=y", "12:30", "NOUN", "1", " ", "!!", "|||", "PUNCT"]
    tags = ["NOUN", "SYM", "PUNCT", "X", "NUM", "PROPN", "NUM", "SPACE", "PUNCT", "SYM", "X"]
    text = format_tags(words, tags)
    assert parse_tags(text) == list(zip(words, tags, strict=True))
    assert parse_tags(text.strip()) == list(zip(words, tags, strict=True))
    record = mark_blanks({"text": None, "tokens": words, "upos": tags})
    assert parse_tags(render(POS, record)[1]) == list(zip(words, tags, strict=True))


@pytest.mark.parametrize(
    ("response", "message"),
    [
        ("", "empty"),
        ("1\ta\tX\n3\tb\tY", "numbered '3', expected 2"),
        ("1\ta X", "found 2"),
        ("1\ta\tb\tX", "found 4"),
        ("1\ta\tX\n", "line 2"),
    ],
)
def test_parse_tags_rejects_what_is_not_the_format(response: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_tags(response)


def test_format_tags_refuses_what_it_cannot_write() -> None:
    for words, tags in ((["a\tb"], ["X"]), (["a"], ["X\n"]), (["a"], [" "]), (["a"], []), ([], [])):
        with pytest.raises(ValueError):
            format_tags(words, tags)


# --- malformed sentences and file shapes ---------------------------------------------------

GOOD = "# sent_id = good\n# text = Hola mundo\n1\tHola\thola\tINTJ\t_\t_\t0\troot\t_\t_\n2\tmundo\tmundo\tNOUN\t_\t_\t1\tvocative\t_\t_\n"


def word(number: str, form: str = "w", head: str = "0", columns: int = 10) -> str:
    fields = [number, form, form, "X", "_", "_", head, "root" if head == "0" else "dep", "_", "_"]
    return "\t".join(fields[:columns]) + "\n"


MALFORMED = {
    "columns": (
        word("1") + word("2", head="1", columns=7),
        3,
        "expected 10 tab-separated columns, found 7",
    ),
    "tabless": (word("1") + "2 mundo mundo NOUN\n", 3, "no tab"),
    "id": (word("1") + word("x", head="1"), 3, "ID 'x' is not a word number"),
    "sequence": (word("1") + word("3", head="1"), 3, "word ID 3 out of sequence: expected 2"),
    "head_text": (word("1") + word("2", head="a"), 3, "HEAD 'a' is not an integer"),
    "head_range": (
        word("1") + word("2", head="9"),
        3,
        "HEAD 9 is out of range: the sentence has 2 words",
    ),
    "range_reversed": ("2-1\tab\t_\t_\t_\t_\t_\t_\t_\t_\n" + word("1"), 2, "ID '2-1' is not"),
    "range_single": (
        "1-1\ta\t_\t_\t_\t_\t_\t_\t_\t_\n" + word("1"),
        2,
        "must span two words or more",
    ),
    "range_late": (
        word("1") + "3-4\tab\t_\t_\t_\t_\t_\t_\t_\t_\n" + word("2", head="1"),
        3,
        "must start at the next word, 2",
    ),
    "range_overlap": (
        "1-2\tab\t_\t_\t_\t_\t_\t_\t_\t_\n" + word("1") + "2-3\tbc\t_\t_\t_\t_\t_\t_\t_\t_\n",
        4,
        "overlaps the one before it",
    ),
    "range_past_end": (
        word("1") + "2-3\tbc\t_\t_\t_\t_\t_\t_\t_\t_\n" + word("2", head="1"),
        3,
        "the last multiword token ends at word 3, but the sentence has 2 words",
    ),
    "empty_node": (
        word("1") + word("3.1", head="_") + word("2", head="1"),
        3,
        "empty node 3.1 out of sequence",
    ),
    "empty_column": (word("1") + "2\t\tx\tX\t_\t_\t1\tdep\t_\t_\n", 3, "column FORM is empty"),
    "no_words": ("1-2\tab\t_\t_\t_\t_\t_\t_\t_\t_\n", 1, "no word lines"),
}


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_a_malformed_sentence_is_one_reject_naming_its_line(kind: str) -> None:
    body, offset, reason = MALFORMED[kind]
    bad = "# sent_id = bad\n" + body
    text = GOOD + "\n" + bad + "\n" + GOOD
    out = sentences(text)
    assert [s["sent_id"] for s in out] == ["good", "bad", "good"]
    reject = out[1]
    bad_start = GOOD.count("\n") + 2
    assert reject["line"] == bad_start
    assert reject[CORRUPT_REASON] == "malformed_sentence"
    detail = reject[CORRUPT_DETAIL]
    assert detail.startswith(f"line {bad_start + offset - 1}: "), detail
    assert reason in detail, detail
    assert reject[CORRUPT_COLUMN] == bad.rstrip("\n")
    assert "tokens" not in reject
    assert out[0]["tokens"] == out[2]["tokens"] == ["Hola", "mundo"]
    assert out[2]["line"] == bad_start + bad.count("\n") + 1


def test_every_kind_in_one_file_and_the_rest_is_read() -> None:
    parts = [GOOD]
    for body, _, _ in MALFORMED.values():
        parts += ["# text = broken\n" + body, GOOD]
    out = arrow_rows("\n".join(parts), "file:///data/mixed.conllu")
    rejects = [row for row in out if row[CORRUPT_COLUMN] is not None]
    good = [row for row in out if row[CORRUPT_COLUMN] is None]
    assert len(rejects) == len(MALFORMED) and len(good) == len(MALFORMED) + 1
    assert all(row["tokens"] == ["Hola", "mundo"] for row in good)
    assert all(re.match(r"line \d+: ", row[CORRUPT_DETAIL]) for row in rejects)
    # The line numbers point at the lines the details name.
    lines = "\n".join(parts).split("\n")
    for row in rejects:
        number = int(row[CORRUPT_DETAIL].split(":")[0].split()[1])
        assert lines[number - 1] in row[CORRUPT_COLUMN].split("\n")
    # The renderer turns each into a reject with the reader's reason and detail.
    with pytest.raises(RecordError) as caught:
        decode_row(False, rejects[0])
    assert caught.value.reason == "malformed_sentence"
    assert caught.value.detail == rejects[0][CORRUPT_DETAIL]


def test_crlf_bom_trailing_whitespace_and_no_final_newline() -> None:
    plain = sentences(GOOD + "\n" + GOOD)
    variants = {
        "crlf": (GOOD + "\n" + GOOD).replace("\n", "\r\n"),
        "bom": "\ufeff" + GOOD + "\n" + GOOD,
        "no final newline": GOOD + "\n" + GOOD.rstrip("\n"),
        "trailing whitespace": (GOOD + "\n" + GOOD).replace("\n", " \t \n"),
        "bom+crlf, no final newline": "\ufeff"
        + (GOOD + "\n" + GOOD.rstrip("\n")).replace("\n", "\r\n"),
    }
    for name, text in variants.items():
        assert sentences(text) == plain, name
    assert sentences("") == [] and sentences("\n\n \n") == []


def test_comments_are_fields_a_template_can_name() -> None:
    text = "# sent_id = s1\n# text = Hola mundo\n# text_en = Hello world\n" + GOOD.split("\n", 2)[2]
    batch = next(
        sentence_batches([pa.RecordBatch.from_pydict({"path": ["t.conllu"], "text": [text]})])
    )
    spec = TemplateSpec("structured/gloss", "gloss", "Translate: {{ text }} ||| {{ text_en }}")
    plan = RenderPlan("ud", "columns", (spec,), 1, 0, id_field="sent_id", language="es",
                      comment_fields=True)  # fmt: skip
    (row,) = [r for out in render_batches(plan, [batch]) for r in out.to_pylist()]
    assert (row["instruction"], row["response"]) == ("Translate: Hola mundo", "Hello world")


def test_blank_lines_and_comments_between_sentences() -> None:
    text = (
        "\n\n# newdoc id = doc-1\n# global.columns = ID FORM LEMMA\n\n\n"
        + GOOD.replace("# sent_id = good\n", "")
        + "\n\n\n# newpar\n# Text EN = Hello world\n# tokens = 2\n# sent id = S\n# text_fr = Bonjour = salut\n"
        + GOOD
        + "\n# trailing comment with no sentence\n"
    )
    first, second = sentences(text, "file:///data/es_test-ud-dev.conllu.gz")
    assert first["sent_id"] == "es_test-ud-dev#1"
    assert first["line"] == 7  # the sentence's own first line, after the comment-only block
    assert first["comments"] == {"newdoc_id": "doc-1", "global_columns": "ID FORM LEMMA"}
    assert second["sent_id"] == "good" and second["line"] == 13  # its block starts at "# newpar"
    assert second["text"] == "Hola mundo"
    assert second["comments"] == {
        "text_en": "Hello world",
        "comment_tokens": "2",
        "comment_sent_id": "S",
        "text_fr": "Bonjour = salut",
    }


def test_default_sent_ids_count_rejected_sentences_too() -> None:
    bare = GOOD.replace("# sent_id = good\n", "")
    broken = "1\tx\n"
    out = sentences(bare + "\n" + broken + "\n" + bare, "file:///d/My%20Bank.conllu")
    assert [s["sent_id"] for s in out] == ["My Bank#1", "My Bank#2", "My Bank#3"]
    assert file_stem("hdfs://nn/ud/fr_gsd-ud-train.conllu.bz2") == "fr_gsd-ud-train"
    assert file_stem("s3://b/plain") == "plain"
    assert comment_key(" Text EN ") == "text_en" and comment_key("?!") == ""
    assert comment_key("line") == "comment_line"


def test_output_batches_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conllu_sentences, "MAX_BATCH_ROWS", 4)
    files = pa.RecordBatch.from_pydict(
        {
            "path": ["file:///a.conllu", "file:///b.conllu"],
            "text": ["\n".join([GOOD] * 7), "\n".join([GOOD] * 3)],
        }
    )
    out = list(conllu_sentences.sentence_batches([files]))
    assert [b.num_rows for b in out] == [4, 4, 2]
    assert all(b.schema.equals(SENTENCE_SCHEMA) for b in out)
    rows = [row for b in out for row in b.to_pylist()]
    assert [row[FILE_COLUMN] for row in rows].count("file:///b.conllu") == 3


# --- Spark ---------------------------------------------------------------------------------


def test_a_file_without_a_tree_is_read_and_only_the_tree_question_has_no_answer() -> None:
    tagged = "# sent_id = t1\n" + word("1", "Hola", head="_") + word("2", "mundo", head="_")
    (record,) = parse_conllu(tagged + "\n", "tagged.conllu")
    assert record["heads"] == [None, None] and record.get(CORRUPT_COLUMN) is None
    marked = mark_blanks(record)
    assert parse_tags(render(POS, marked, "k")[1]) == [("Hola", "X"), ("mundo", "X")]
    with pytest.raises(RenderError) as error:
        render(HEAD, marked, "k")
    assert error.value.reason == "empty_response"


@pytest.mark.spark
def test_read_conllu_on_spark(spark: Any, tmp_path: Path) -> None:
    from jobs.config.models import DatasetRegistry
    from jobs.config.plan import SourcePlan
    from jobs.io.readers.conllu import read_conllu

    treebank = tmp_path / "it_vit-test.conllu"
    treebank.write_text(
        VIT.read_text(encoding="utf-8") + "# sent_id = broken\n1\tuno\tuno\tNUM\n\n" + GOOD,
        encoding="utf-8",
    )
    # A sentence holding a byte that is not UTF-8: its own reject; the rest is read.
    with treebank.open("ab") as handle:
        handle.write(b"\n# sent_id = latin1\n1\tcaf\xe9\tcaf\xe9\tNOUN\t_\t_\t0\troot\t_\t_\n")
    registry = DatasetRegistry(
        name="ud_it_vit",
        path=str(treebank),
        format="conllu",
        task="pos_tagging",
        license="CC BY-NC-SA 3.0",
        templates=["../templates/structured/pos_tagging.jinja"],
    )
    render_plan = RenderPlan(
        source="ud_it_vit",
        record_format="columns",
        templates=(POS.spec,),
        templates_per_record=None,
        seed=0,
    )
    source = SourcePlan(registry, str(tmp_path / "ud_it_vit.yaml"), (str(treebank),), render_plan)
    frame = read_conllu(spark, source)
    assert frame.columns == SENTENCE_SCHEMA.names
    rows = {row["sent_id"]: row.asDict() for row in frame.collect()}
    assert sorted(rows) == ["VIT-2", "VIT-318", "VIT-591", "broken", "good", "it_vit-test#6"]
    latin1 = rows["it_vit-test#6"]
    assert latin1[CORRUPT_REASON] == "invalid_utf8" and latin1[CORRUPT_DETAIL].startswith("line ")
    assert "caf\\xe9" in latin1[CORRUPT_COLUMN]
    vit = rows["VIT-2"]
    assert vit["tokens"][:2] == ["In", "gli"] and len(vit["heads"]) == 59
    assert vit["multiword_tokens"][0] == "1-2 Negli"
    assert vit["line"] == 1 and vit[FILE_COLUMN].endswith("it_vit-test.conllu")
    assert vit[CORRUPT_COLUMN] is None
    broken = rows["broken"]
    assert broken[CORRUPT_REASON] == "malformed_sentence"
    assert broken[CORRUPT_DETAIL] == "line 135: expected 10 tab-separated columns, found 4"
    assert broken[CORRUPT_COLUMN] == "# sent_id = broken\n1\tuno\tuno\tNUM"
    assert broken["tokens"] is None
    assert rows["good"]["comments"] == {}
