"""Duplicates and contamination judged as a person would, on real text, with the defaults:

- many questions on one passage (promptsource's own xquad templates, the flat SQuAD schema)
  are distinct records, while a planted copy with a typo in its question is a duplicate;
- repeated ids never cost a distinct record, and every written id is unique;
- a train record holding a held-out premise and hypothesis inside a longer text, and planted
  copies of benchmark items (inside longer texts, re-cased, re-spaced), are removed with the
  set's name in the reason; the manifest's matrix equals the real counts;
- ``instructmill decontaminate`` finds the same on an existing output.

The passages and questions are sentences of the UD treebanks in ``../shared/data/ud``; the
benchmarks are SuperNI tasks of ``../shared/data/superni``.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pytest
from pyspark.sql import functions as F

from jobs.commands.build import run_build, run_context
from jobs.commands.decontaminate import run_decontaminate
from jobs.config import ConfigError, load_plan
from jobs.config.plan import load_decontamination_config
from tests.conftest import ROOT

SHARED = ROOT.parent / "shared" / "data"
UD = SHARED / "ud"
SUPERNI = SHARED / "superni" / "tasks"
XQUAD = SHARED / "promptsource-multilingual" / "templates" / "xquad" / "xquad.en"
QA_LANGUAGES = ("en", "de", "es", "ru")
PASSAGES, QUESTIONS_PER_PASSAGE, PLANTED_PER_LANGUAGE = 30, 4, 2


def _sentences(language: str) -> list[str]:
    lines = (UD / f"{language}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines]


def _typo(text: str) -> str:
    """Swap two different letters inside the word nearest the middle of the text."""
    words = text.split(" ")

    def swappable(word: str) -> bool:
        return len(word) >= 4 and word[len(word) // 2 - 1] != word[len(word) // 2]

    index = max(range(len(words)), key=lambda k: (swappable(words[k]), -abs(k - len(words) // 2)))
    word = words[index]
    middle = len(word) // 2
    words[index] = word[: middle - 1] + word[middle] + word[middle - 1] + word[middle + 1 :]
    return " ".join(words)


def qa_records() -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """Records in the flat SQuAD schema: 30 passages of five sentences, four questions each
    (other sentences), the answer a word of the passage; and planted duplicates (same
    passage, same answer, the question with a typo), as (original id, copy id)."""
    records: list[dict[str, Any]] = []
    planted: list[tuple[str, str]] = []
    for language in QA_LANGUAGES:
        sentences = _sentences(language)
        # Questions of a few words at least: UD has sentences like "?" and "Thanks,".
        questions = iter(s for s in sentences[5 * PASSAGES :] if len(s.split()) >= 4)
        for passage in range(PASSAGES):
            context = " ".join(sentences[5 * passage : 5 * passage + 5])
            answer = max(context.split(" "), key=len)
            for number in range(QUESTIONS_PER_PASSAGE):
                records.append({
                    "id": f"{language}-{passage}-{number}", "lang": language,
                    "title": f"passage {passage}", "context": context,
                    "question": next(questions),
                    "answers": {"text": [answer], "answer_start": [context.index(answer)]},
                })  # fmt: skip
        for passage in range(PLANTED_PER_LANGUAGE):
            original = next(r for r in records if r["id"] == f"{language}-{7 * passage}-1")
            copy = {**original, "id": f"{original['id']}-typo",
                    "question": _typo(original["question"])}  # fmt: skip
            records.append(copy)
            planted.append((original["id"], copy["id"]))
    return records, planted


def _content(record: dict[str, Any]) -> str:
    return json.dumps([record["context"], record["question"], record["answers"]["text"]])


def _superni(name: str) -> list[dict[str, Any]]:
    task = json.loads((SUPERNI / name).read_text(encoding="utf-8"))
    return task["Instances"]


# Benchmark A (in the build): SuperNI's TriangleCOPA question generation, as JSON Lines.
BENCH_A = "task1665_trainglecopa_question_generation.json"
# Benchmark B (only for `instructmill decontaminate`): Amazon reviews, the SuperNI file itself.
BENCH_B = "task1577_amazon_reviews_multi_japanese_language_classification.json"


def _planted_copy(text: str, how: str) -> str:
    if how == "inside":
        return f"My review, honestly: {text} That is what I think about it."
    if how == "recased":
        return text.upper()
    return "  ".join(text.replace(". ", ".\n").split(" "))  # re-spaced


def train_reviews() -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Clean English sentences (UD, other than the QA set's), plus planted copies of
    benchmark items: {record id: benchmark it copies}."""
    # English UD sentences (the QA set's too: one-field reviews never match three-field QA).
    clean = _sentences("en")
    records = [{"id": f"clean-{k}", "text": text} for k, text in enumerate(clean)]
    planted: dict[str, str] = {}
    usable_a = [i for i in _superni(BENCH_A) if len(i["input"].split()) >= 8]
    ways = ["inside", "recased", "respaced"] * 2
    for k, (instance, how) in enumerate(zip(usable_a[: len(ways)], ways, strict=True)):
        records.append({"id": f"copy-a-{k}", "text": _planted_copy(instance["input"], how)})
        planted[f"copy-a-{k}"] = "triangle_copa"
    usable_b = [i for i in _superni(BENCH_B) if len(i["input"].split()) >= 20]
    for k, (instance, how) in enumerate(zip(usable_b[:3], ways[:3], strict=True)):
        records.append({"id": f"copy-b-{k}", "text": _planted_copy(instance["input"], how)})
        planted[f"copy-b-{k}"] = "amazon_reviews"
    return records, planted


def nli_records() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Held-out NLI pairs (long premises), and train paraphrase records, one of which holds
    a held-out hypothesis and premise (in that order) inside a longer text."""
    sentences = [s for s in _sentences("fr") if len(s.split()) >= 16]
    heldout = [
        {"id": f"h{k}", "premise": sentences[2 * k], "hypothesis": sentences[2 * k + 1],
         "label": k % 3}
        for k in range(20)
    ]  # fmt: skip
    target = heldout[3]
    inside = f"Avis : {target['hypothesis']} Et aussi : {target['premise']} Voilà tout."
    train = [{"id": "p-contains", "text": inside}] + [
        {"id": f"p{k}", "text": text} for k, text in enumerate(sentences[60:120])
    ]
    return heldout, train


def _jsonl(path: Path, rows: list[dict[str, Any]], extra_lines: tuple[str, ...] = ()) -> None:
    lines = [json.dumps(row, ensure_ascii=False) for row in rows] + list(extra_lines)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def repeated_id_records() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A source whose ids repeat (distinct texts under one id, and exact repeats), and one
    with no id at all (exact repeats get the same derived key)."""
    sentences = _sentences("es")[300:320]
    with_ids = [
        {"id": "r1", "text": sentences[0]}, {"id": "r1", "text": sentences[1]},
        {"id": "r1", "text": sentences[2]}, {"id": "r2", "text": sentences[3]},
        {"id": "r2", "text": sentences[3]}, {"id": "r3", "text": sentences[4]},
    ]  # fmt: skip
    without = [{"text": sentences[k]} for k in (5, 6, 6, 7, 7, 7)]
    return with_ids, without


REGISTRY = """name: {name}
path: ../../data/{file}
format: jsonl
{id_line}{language}
license: CC-BY-4.0
task: {task}
templates: [{templates}]
"""


def _project(root: Path, benchmarks: str) -> Path:
    for folder in ("data", "conf/datasets", "templates", "evals"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "templates" / "plain.jinja").write_text("{{ text }} ||| ok\n", encoding="utf-8")
    (root / "templates" / "nli.jinja").write_text(
        "{{ premise }} Question: {{ hypothesis }} ||| {{ label }}\n", encoding="utf-8"
    )
    qa, _ = qa_records()
    reviews, _ = train_reviews()
    heldout, paraphrases = nli_records()
    with_ids, without = repeated_id_records()
    sources = {
        "qa": ("qa.jsonl", qa, "language_field: lang", "extractive_qa",
               str(XQUAD / "templates.yaml")),
        "reviews": ("reviews.jsonl", reviews, "language: en", "sentiment",
                    "../../templates/plain.jinja"),
        "nli_heldout": ("nli.jsonl", heldout, "language: fr", "nli", "../../templates/nli.jinja"),
        "paraphrases": ("para.jsonl", paraphrases, "language: fr", "paraphrase",
                        "../../templates/plain.jinja"),
        "repeated": ("repeated.jsonl", with_ids, "language: es", "sentiment",
                     "../../templates/plain.jinja"),
        "no_ids": ("no_ids.jsonl", without, "language: es", "sentiment",
                   "../../templates/plain.jinja"),
    }  # fmt: skip
    for name, (file, rows, language, task, templates) in sources.items():
        _jsonl(root / "data" / file, rows)
        id_line = "" if name == "no_ids" else "id_field: id\n"
        (root / "conf" / "datasets" / f"{name}.yaml").write_text(
            REGISTRY.format(name=name, file=file, id_line=id_line, language=language,
                            task=task, templates=templates),
            encoding="utf-8",
        )  # fmt: skip
    items = [{"qid": i["id"], "question": i["input"], "answer": i["output"][0]}
             for i in _superni(BENCH_A)]  # fmt: skip
    _jsonl(root / "evals" / "triangle.jsonl", items,
           ('{"qid": "bad", "question": ', '{"qid": "empty"}'))  # fmt: skip
    conf = root / "conf" / "pipeline.yaml"
    conf.write_text(
        "sources: [datasets/*.yaml]\noutput: ../out\nheldout_clusters: [entailment]\n" + benchmarks,
        encoding="utf-8",
    )
    return conf


BENCHMARK_A = """decontamination:
  ngram: 13
  heldout: true
  benchmarks:
    - name: triangle_copa
      path: ../evals/triangle.jsonl
      format: jsonl
      id_field: qid
      fields: [question, answer]
"""


def _rows(folder: Path) -> list[dict[str, Any]]:
    if not folder.exists():
        return []
    return ds.dataset(folder, format="parquet", partitioning="hive").to_table().to_pylist()


@pytest.fixture(scope="module")
def build(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("decontamination")
    conf = _project(root, BENCHMARK_A)
    plan = load_plan(conf)
    manifest = run_build(spark, plan, run_context(plan, None)).to_dict()
    out = Path(plan.output)
    return {"root": root, "out": out, "manifest": manifest, "data": _rows(out / "data"),
            "rejects": _rows(out / "rejects")}  # fmt: skip


def test_questions_on_one_passage_are_distinct_and_a_typo_copy_is_a_duplicate(
    build: dict[str, Any], report: Any
) -> None:
    records, planted = qa_records()
    written = {row["source_key"] for row in build["data"] if row["source"] == "qa"}
    rejected = {row["source_key"] for row in build["rejects"] if row["source"] == "qa"}
    removed = {r["id"] for r in records} - written - rejected
    copies = {copy for _, copy in planted}
    distinct_removed = removed - copies - {original for original, _ in planted}
    assert len({_content(r) for r in records}) == len(records)  # every record is distinct
    # Each planted pair keeps exactly one of its two records.
    for original, copy in planted:
        assert len({original, copy} & written) == 1, (original, copy)
    assert len(distinct_removed) <= 0.01 * (len(records) - len(planted)), sorted(distinct_removed)
    assert build["manifest"]["sources"]["qa"]["duplicates"] == len(removed)
    report(
        f"field-aware dedup, {len(records)} QA records ({len(QA_LANGUAGES)} languages, "
        f"{QUESTIONS_PER_PASSAGE} questions a passage, xquad templates): {len(removed)} removed, "
        f"{len(planted)} planted typo copies, {len(distinct_removed)} distinct records removed"
    )


def test_repeated_ids_never_cost_a_distinct_text_and_written_ids_are_unique(
    build: dict[str, Any],
) -> None:
    data, manifest = build["data"], build["manifest"]
    ids = Counter(row["id"] for row in data)
    assert max(ids.values()) == 1
    with_ids, without = repeated_id_records()
    for name, rows in (("repeated", with_ids), ("no_ids", without)):
        texts = Counter(row["instruction"] for row in data if row["source"] == name)
        assert set(texts) == {row["text"] for row in rows}, name
        assert max(texts.values()) == 1, name
    # r1 holds three texts (three records now), r2 one text twice (an exact repeat).
    repeated = manifest["repeated_ids"]["repeated"]
    assert repeated["keys"] == 2 and repeated["keys_with_several_texts"] == 1
    assert repeated["examples"] == ["r1", "r2"]
    assert manifest["sources"]["repeated"]["duplicates"] == 1
    assert manifest["sources"]["no_ids"]["duplicates"] == 3
    keys = {row["source_key"] for row in data if row["source"] == "repeated"}
    assert "r2" in keys and "r3" in keys and sum(k.startswith("r1#") for k in keys) == 3
    assert manifest["totals"]["reconciled"]


def test_a_train_text_holding_a_heldout_pair_is_removed_as_contaminating(
    build: dict[str, Any],
) -> None:
    rejects = [row for row in build["rejects"] if row["source"] == "paraphrases"]
    assert [(row["source_key"], row["stage"], row["reason"]) for row in rejects] == [
        ("p-contains", "decontamination", "contaminates_heldout")
    ]
    heldout_id = next(
        row["id"] for row in build["data"]
        if row["source"] == "nli_heldout" and row["source_key"] == "h3"
    )  # fmt: skip
    assert rejects[0]["detail"].endswith(f"with held-out record {heldout_id}")
    assert build["manifest"]["decontamination"]["matrix"]["paraphrases"] == {"heldout": 1}


def test_planted_benchmark_copies_are_removed_and_the_matrix_counts_them(
    build: dict[str, Any], report: Any
) -> None:
    records, planted = train_reviews()
    in_build = {key for key, bench in planted.items() if bench == "triangle_copa"}
    rejects = {row["source_key"]: row for row in build["rejects"] if row["source"] == "reviews"}
    contaminated = {k for k, row in rejects.items() if row["reason"] == "contaminates_benchmark"}
    assert in_build <= contaminated
    for key in in_build:
        assert rejects[key]["stage"] == "decontamination"
        assert "of benchmark triangle_copa" in rejects[key]["detail"]
    clean = len(records) - len(planted)
    false_positives = contaminated - in_build
    assert len(false_positives) <= 0.01 * clean, sorted(false_positives)
    document = build["manifest"]["decontamination"]
    assert document["matrix"]["reviews"] == {"triangle_copa": len(contaminated)}
    triangle = document["sets"]["triangle_copa"]
    assert triangle["bad_lines"] == 2
    assert triangle["bad_reasons"] == {"malformed_json": 1, "missing_field": 1}
    assert triangle["items"] == len(_superni(BENCH_A))
    assert triangle["contaminated_records"] == len(contaminated)
    assert build["manifest"]["sources"]["reviews"]["contaminated"] == len(contaminated)
    report(
        f"n-gram decontamination: {len(in_build)} planted copies of {triangle['items']} "
        f"benchmark items all removed; {len(false_positives)} of {clean} clean records removed"
    )


def test_decontaminate_command_finds_new_benchmarks_in_an_existing_output(
    spark: Any, build: dict[str, Any]
) -> None:
    root = build["root"]
    conf = root / "evals" / "new.yaml"
    conf.write_text(
        "decontamination:\n  heldout: false\n  benchmarks:\n"
        f"    - name: amazon_reviews\n      path: {SUPERNI / BENCH_B}\n"
        "      format: superni\n      fields: [input, output]\n",
        encoding="utf-8",
    )
    output = root / "decontaminated"
    manifest = run_decontaminate(
        spark, load_decontamination_config(conf), str(build["out"]), str(output)
    )
    _, planted = train_reviews()
    copies = {key for key, bench in planted.items() if bench == "amazon_reviews"}
    rejects = _rows(output / "rejects")
    assert {row["source_key"] for row in rejects} == copies
    assert {row["reason"] for row in rejects} == {"contaminates_benchmark"}
    assert manifest["decontamination"]["matrix"] == {"reviews": {"amazon_reviews": len(copies)}}
    reviews = manifest["sources"]["reviews"]
    assert reviews["contaminated"] == len(copies) and manifest["totals"]["reconciled"]
    assert len(_rows(output / "data")) == len(build["data"]) - len(copies)


def test_a_missing_benchmark_file_is_a_config_error_before_spark(tmp_path: Path) -> None:
    conf = _project(tmp_path, BENCHMARK_A.replace("triangle.jsonl", "missing.jsonl"))
    with pytest.raises(ConfigError, match=r"benchmarks\[0\] \(triangle_copa\).*does not exist"):
        load_plan(conf)
    conf.write_text(conf.read_text().replace("missing.jsonl", "*.nothing"), encoding="utf-8")
    with pytest.raises(ConfigError, match="matches no file"):
        load_plan(conf)


def test_benchmark_settings_are_strict_and_the_shorthand_agrees(tmp_path: Path) -> None:
    conf = _project(tmp_path, BENCHMARK_A.replace("fields: [question, answer]", "fields: []"))
    with pytest.raises(ConfigError, match="fields"):
        load_plan(conf)
    conf = _project(tmp_path, "decontaminate: false\n" + BENCHMARK_A)
    with pytest.raises(ConfigError, match="decontaminate: false"):
        load_plan(conf)


def test_typo_helper_changes_one_word_only() -> None:
    rng = random.Random(3)
    for text in rng.sample([s for s in _sentences("en") if len(s.split()) >= 4], 50):
        changed = _typo(text)
        differing = [a for a, b in zip(text.split(" "), changed.split(" "), strict=True) if a != b]
        assert len(differing) == 1, text


def test_a_heldout_side_too_large_to_broadcast_is_joined_by_hash_with_the_same_matches(
    spark: Any, tmp_path: Path
) -> None:
    """``broadcast_ngrams: 0`` sends every held-out n-gram through the hash join; the
    records found and the n-grams named are those of the broadcast index."""
    from jobs.config import DecontaminationConfig
    from jobs.io.staging import Staging
    from jobs.stages.decontaminate import DecontaminationPlan, find_matches
    from udfs.records import FIELD_SEPARATOR

    heldout, train = nli_records()
    sentences = [s for s in _sentences("de") if len(s.split()) >= 6][:40]
    short = "Der kleine Hund schläft im Garten"  # 6 tokens: contained whole, or not at all
    rows = [
        ("nli", h["id"], f"n-{h['id']}", "heldout",
         FIELD_SEPARATOR.join([h["premise"], h["hypothesis"]]))
        for h in heldout
    ] + [("short", "s0", "n-s0", "heldout", short)] + [
        ("para", t["id"], f"p-{t['id']}", "train", t["text"]) for t in train
    ] + [
        ("de", f"d{k}", f"d-{k}", "train", text) for k, text in enumerate(sentences)
    ] + [("de", "contains-short", "d-x", "train", f"Heute: {short.upper()}, wie immer.")]  # fmt: skip
    frame = spark.createDataFrame(
        rows, "source string, source_key string, id string, split string, dedup_text string"
    ).withColumn("reason", F.lit(None).cast("string"))
    found = {}
    for limit in (20_000_000, 0):
        settings = DecontaminationConfig(broadcast_ngrams=limit)
        plan = DecontaminationPlan(settings, (), heldout=True)
        staging = Staging(spark, str(tmp_path / f"staging-{limit}"))
        matches = find_matches(frame, plan, staging).matches
        found[limit] = sorted((row["source_key"], row["ngram"]) for row in matches.collect())
    assert found[0] == found[20_000_000]
    assert {key for key, _ in found[0]} == {"p-contains", "contains-short"}
    assert ("contains-short", short.lower()) in found[0]
