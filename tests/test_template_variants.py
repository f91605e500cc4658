"""`instructmill templates paraphrase|translate` against a loopback OpenAI-compatible server
with scripted answers (tests/chat_stub.py), through the real client: every check a variant
must pass, retries, the timeout, the cache, the review files and the build's review gate."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import jinja2
import pytest
import yaml

from jobs.cli import main
from jobs.variants.chat_client import ChatClient, ChatSettings
from jobs.variants.generate import ReplyFormatError, parse_variants
from jobs.variants.reply_cache import ReplyCache
from tests.chat_stub import Answer, chat_stub, variants
from udfs.template_files import load_promptsource_file
from udfs.template_shape import shape_difference, template_shape
from udfs.templating import environment

ROOT = Path(__file__).resolve().parent.parent
NLI_RECORDS = ROOT / "data" / "samples" / "nli_en.jsonl"
# Past the 2 s timeout the tests give the client; a reply that is not delayed comes in
# milliseconds, so even a loaded machine does not time it out by mistake.
SLOW = 4.5
LABEL = '||| {{ ["entailment", "neither", "contradiction"][label] }}'

GOOD = [
    "Premise: {{ premise }}\nHypothesis: {{ hypothesis }}\n\nDoes the first text imply the "
    "second, contradict it, or neither?",
    "Here is a premise: {{ premise }}\nAnd a hypothesis: {{ hypothesis }}\nIs the hypothesis "
    "entailed, contradicted, or neither?",
    "Hypothesis: {{hypothesis}}\nPremise: {{premise}}\nEntailed, contradicted or neither?",
]
DROPPED = "Premise: {{ premise }}\nDoes it entail, contradict or leave open the claim?"
INVALID = "Premise: {{ premise }} {% if %} Hypothesis: {{ hypothesis }}"
DUPLICATE = (
    GOOD[1]
    .upper()
    .replace("{{ PREMISE }}", "{{ premise }}")
    .replace("{{ HYPOTHESIS }}", "{{ hypothesis }}")
)
COPY = "Premise: {{ premise }}\nHypothesis:   {{ hypothesis }}\n\nDoes the premise entail the " \
    "hypothesis, contradict it, or neither?"  # fmt: skip


def shape_reason(original: str, variant: str) -> str | None:
    env = environment()
    found = shape_difference(template_shape(env, original), template_shape(env, variant))
    return None if found is None else found[0]


def test_shape_compares_expressions_not_words() -> None:
    original = "{% if title %}{{ title | upper }}: {% endif %}{{ text }} ||| {{ label }}"
    assert shape_reason(original, "{% if title %}Title {{title|upper}}. {% endif %}Text "
                        "{{ text }} ||| {{ label }}") is None  # fmt: skip
    # Reordered: a paraphrase may put the fields in another order.
    assert shape_reason(original, "{{ text }} {% if title %}({{ title | upper }}){% endif %}"
                        " ||| {{ label }}") is None  # fmt: skip
    assert shape_reason(original, "{{ text }} ||| {{ label }}") == "variables_changed"
    assert shape_reason(original, "{% if title %}{{ title }}: {% endif %}{{ text }} ||| "
                        "{{ label }}") == "expressions_changed"  # fmt: skip
    # The same expressions, one moved out of its `if`: renders where it must not.
    assert shape_reason(original, "{{ title | upper }} {% if title %}{% endif %}{{ text }} ||| "
                        "{{ label }}") == "expressions_changed"  # fmt: skip
    assert shape_reason(original, original.replace("{{ text }}", "{{ text }} {{ text }}")) == (
        "expressions_changed"
    )
    with pytest.raises(jinja2.TemplateSyntaxError):
        template_shape(environment(), "{{ text ")


def test_reply_parsing() -> None:
    assert parse_variants('```json\n{"variants": ["a", "b"]}\n```') == ["a", "b"]
    assert parse_variants('Sure! ["a"] hope that helps') == ["a"]
    for bad in ("no json here", '{"answers": ["a"]}', '{"variants": [unquoted]}'):
        with pytest.raises(ReplyFormatError):
            parse_variants(bad)


def _client(stub_endpoint: str, tmp_path: Path) -> ChatClient:
    settings = ChatSettings(endpoint=stub_endpoint, model="stub", timeout=2.0, retries=2,
                            backoff=0.01, concurrency=2)  # fmt: skip
    return ChatClient(settings, ReplyCache(tmp_path / "cache"))


def _ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_client_retries_times_out_bounds_and_caches(tmp_path: Path) -> None:
    script = [
        ("rate", [Answer(status=429, headers={"Retry-After": "0"}), Answer(status=500),
                  variants("ok")]),
        ("slow-once", [Answer(variants("late").content, delay=SLOW), variants("on time")]),
        ("always-slow", [Answer(variants("never").content, delay=SLOW)]),
        ("forbidden", [Answer(status=401)]),
        ("many", [Answer(variants("x").content, delay=0.3)]),
    ]  # fmt: skip
    with chat_stub(script) as stub:
        client = _client(stub.endpoint, tmp_path)
        rate, slow, stuck, denied = client.ask_all(
            [_ask("rate"), _ask("slow-once"), _ask("always-slow"), _ask("forbidden")]
        )
        assert (rate.content, rate.attempts) == (json.dumps({"variants": ["ok"]}), 3)
        assert (slow.content, slow.attempts) == (json.dumps({"variants": ["on time"]}), 2)
        assert stuck.content is None and stuck.error is not None
        assert stuck.error.startswith("timeout") and stuck.attempts == 3
        assert denied.error is not None and denied.error.startswith("HTTP 401")
        assert denied.attempts == 1  # a client error is not retried
        sent = len(stub.requests)
        again = client.ask_all([_ask("rate"), _ask("slow-once")])
        assert [reply.cached for reply in again] == [True, True]
        assert [reply.content for reply in again] == [rate.content, slow.content]
        assert len(stub.requests) == sent  # the cache answered
        while stub.in_flight:  # the server still sleeps on the replies the client gave up on
            time.sleep(0.1)
        stub.most_in_flight = 0
        client.ask_all([_ask(f"many {i}") for i in range(6)])
        assert stub.most_in_flight == 2  # --concurrency 2


def _paraphrase(target: Path, stub_endpoint: str, tmp_path: Path, *extra: str) -> int:
    return main([
        "templates", *extra[:1], str(target), "--endpoint", stub_endpoint, "--model", "stub",
        "--timeout", "2", "--backoff", "0.01", "--cache-dir", str(tmp_path / "cache"), *extra[1:],
    ])  # fmt: skip


def _copy_templates(tmp_path: Path) -> Path:
    folder = tmp_path / "templates" / "nli"
    shutil.copytree(ROOT / "templates" / "nli", folder)
    return folder


def test_file_rejections_carry_their_reasons(tmp_path: Path) -> None:
    folder = _copy_templates(tmp_path)
    script = [("Does the premise entail", [variants(GOOD[0], DROPPED, INVALID, GOOD[1],
                                                    DUPLICATE, COPY, GOOD[1] + " |||")])]  # fmt: skip
    with chat_stub(script) as stub:
        code = _paraphrase(folder / "entailment_label.jinja", stub.endpoint, tmp_path,
                           "paraphrase", "--records", str(NLI_RECORDS), "--n", "7")  # fmt: skip
    assert code == 0
    run = json.loads((folder / "variants" / "paraphrase-run.json").read_text())
    (entry,) = run["originals"]
    assert [r["reason"] for r in entry["rejected"]] == [
        "variables_changed", "invalid_jinja", "duplicate_variant", "copy_of_original",
        "separator_in_instruction",
    ]  # fmt: skip
    assert entry["rejected"][0]["detail"] == "missing: hypothesis; added: -"
    assert len(entry["accepted"]) == 2


def test_render_failure_is_a_reason(tmp_path: Path) -> None:
    # promptsource templates build lists with .append; a variant that reads the list before
    # filling it has the very same expressions (so the AST check passes) but cannot render.
    folder = tmp_path / "templates" / "claims"
    folder.mkdir(parents=True)
    (folder / "shown.jinja").write_text(
        '{% set shown = [] %}{{ shown.append(premise) or "" }}Premise: {{ shown[0] }} '
        "Hypothesis: {{ hypothesis }} ||| {{ label }}\n", encoding="utf-8")  # fmt: skip
    early = '{% set shown = [] %}Premise: {{ shown[0] }}{{ shown.append(premise) or "" }} ' \
        "Claim: {{ hypothesis }}"  # fmt: skip
    kept = '{% set shown = [] %}{{ shown.append(premise) or "" }}Text: {{ shown[0] }} ' \
        "Claim: {{ hypothesis }}"  # fmt: skip
    with chat_stub([("", [variants(early, kept)])]) as stub:
        code = _paraphrase(folder, stub.endpoint, tmp_path, "paraphrase",
                           "--records", str(NLI_RECORDS), "--n", "2")  # fmt: skip
    assert code == 0
    (entry,) = json.loads((folder / "variants" / "paraphrase-run.json").read_text())["originals"]
    assert [r["reason"] for r in entry["rejected"]] == ["render_failed"]
    assert "no element 0" in entry["rejected"][0]["detail"]
    assert len(entry["accepted"]) == 1


def test_translate_checks_the_language(tmp_path: Path) -> None:
    folder = _copy_templates(tmp_path)
    german = ("Prämisse: {{ premise }}\nHypothese: {{ hypothesis }}\n\nFolgt die Hypothese aus "
              "der Prämisse, widerspricht sie ihr, oder keines von beiden?")  # fmt: skip
    french = ("Prémisse : {{ premise }}\nHypothèse : {{ hypothesis }}\n\nLa prémisse "
              "implique-t-elle l'hypothèse, la contredit-elle, ou ni l'un ni l'autre ?")  # fmt: skip
    with chat_stub([("German", [variants(german, french)])]) as stub:
        code = _paraphrase(folder / "entailment_label.jinja", stub.endpoint, tmp_path,
                           "translate", "--to", "de", "--records", str(NLI_RECORDS), "--n", "2")  # fmt: skip
        assert "German (de)" in stub.requests[0]["messages"][1]["content"]
    assert code == 0
    (entry,) = json.loads((folder / "variants" / "translate-run.json").read_text())["originals"]
    assert [r["reason"] for r in entry["rejected"]] == ["wrong_language"]
    assert "fastText says fr" in entry["rejected"][0]["detail"]
    (spec,) = load_promptsource_file(folder / "variants" / "templates.yaml")
    assert spec.metadata is not None
    assert (spec.metadata["generated_by"], spec.metadata["languages"]) == ("translate", ["de"])


def test_failed_requests_exit_nonzero_and_usage_errors(tmp_path: Path) -> None:
    folder = _copy_templates(tmp_path)
    with chat_stub([("", [Answer(status=503)])]) as stub:
        code = _paraphrase(folder / "entailment_label.jinja", stub.endpoint, tmp_path,
                           "paraphrase", "--records", str(NLI_RECORDS), "--retries", "2")  # fmt: skip
        assert code == 1 and len(stub.requests) == 3
    run = json.loads((folder / "variants" / "paraphrase-run.json").read_text())
    assert run["originals"][0]["problem"][0] == "request_failed"
    with chat_stub([("", [Answer("Here you go: no JSON at all")])]) as stub:
        code = _paraphrase(folder / "entailment_label.jinja", stub.endpoint, tmp_path,
                           "paraphrase", "--records", str(NLI_RECORDS), "--seed", "1")  # fmt: skip
    assert code == 0
    run = json.loads((folder / "variants" / "paraphrase-run.json").read_text())
    assert run["originals"][0]["problem"][0] == "unparseable_reply"
    # No --records for a file, no endpoint: exit 2 with the fix, before any request.
    assert main(["templates", "paraphrase", str(folder), "--endpoint", "http://127.0.0.1:9/v1",
                 "--model", "m"]) == 2  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "jobs.cli", "templates", "paraphrase", str(folder), "--records",
         str(NLI_RECORDS)],
        capture_output=True, text=True, cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )  # fmt: skip
    assert result.returncode == 2 and "--endpoint and --model" in result.stderr


def _source_conf(tmp_path: Path, folder: Path, **registry_extra: object) -> Path:
    registry = yaml.safe_load((ROOT / "conf" / "datasets" / "nli_en.yaml").read_text())
    registry.update(path=str(NLI_RECORDS), templates=[
        str(folder / "entailment_label.jinja"), {"path": str(folder / "templates.yaml")},
    ], **registry_extra)  # fmt: skip
    (tmp_path / "nli_en.yaml").write_text(yaml.safe_dump(registry), encoding="utf-8")
    conf = {"sources": [str(tmp_path / "nli_en.yaml")], "output": str(tmp_path / "out"),
            "templates_per_record": "all", "heldout_clusters": []}  # fmt: skip
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(conf), encoding="utf-8")
    return path


def _nli_variants(stem: str, tail: str) -> list[str]:
    return [f"{{{{ premise }}}}\n{opening} {stem} \"{{{{ hypothesis }}}}\"? {tail}"
            for opening in ("Read this.", "Given the text above:", "Think about it.",
                            "One question.", "Consider the passage.")]  # fmt: skip


@pytest.mark.spark
def test_conf_paraphrase_is_reviewed_before_a_build_uses_it(spark, tmp_path, capsys, report):
    from jobs.commands.build import run_build, run_context
    from jobs.config import load_plan
    from jobs.variants.checks import Sample, renders_of
    from jobs.variants.originals import read_records

    folder = _copy_templates(tmp_path)
    conf = _source_conf(tmp_path, folder)
    script = [
        ("Does the premise entail", [Answer(status=429, headers={"Retry-After": "0"}),
                                     Answer(status=500),
                                     variants(GOOD[0], DROPPED, INVALID, GOOD[1], DUPLICATE)]),
        ("can we conclude", [Answer(variants("too late").content, delay=SLOW),
                             variants(*_nli_variants("can we conclude", "Yes, no, or maybe?"))]),
        ("assume accurate", [variants(*_nli_variants("is it true that", "True, false, or unknown?"))]),
        ("premise question label", [variants(*_nli_variants("entailment or not:",
                                                            "Entailment, neutral, or contradiction?"))]),
    ]  # fmt: skip
    args = ["paraphrase", "--n", "5"]
    with chat_stub(script) as stub:
        assert _paraphrase(conf, stub.endpoint, tmp_path, *args) == 0
        first = capsys.readouterr().out
        sent = len(stub.requests)
        assert sent == 3 + 2 + 1 + 1  # 429 and 500 before success, one timeout, two plain
        assert _paraphrase(conf, stub.endpoint, tmp_path, *args) == 0
        second = capsys.readouterr().out
        assert len(stub.requests) == sent  # the rerun asked nothing
    assert "requests: 7 sent, 0 from cache, 0 failed" in first
    assert "requests: 0 sent, 4 from cache, 0 failed" in second
    report(f"template variants: first run {sent} requests, rerun 0 (4 from cache)")

    variants_path = folder / "variants" / "templates.yaml"
    entries = load_promptsource_file(variants_path)
    run = json.loads((folder / "variants" / "paraphrase-run.json").read_text())
    rejected = {e["original_name"]: [r["reason"] for r in e["rejected"]] for e in run["originals"]}
    assert rejected == {"nli/entailment_label": ["variables_changed", "invalid_jinja",
                                                 "duplicate_variant"],
                        "can we conclude": [], "assume accurate": [], "premise question label": []}  # fmt: skip
    assert len(entries) == 2 + 3 * 5
    # Every accepted variant passes the checks again on its own: same shape as its original,
    # renders on every sample record its original renders on.
    plan = load_plan(str(conf))
    originals = {spec.template_id: spec for spec in plan.sources[0].render.templates}
    samples = read_records(NLI_RECORDS, 20)
    for entry in entries:
        assert entry.metadata is not None and entry.metadata["reviewed"] is False
        assert entry.metadata["model"] == "stub" and len(entry.metadata["prompt_hash"]) == 16
        original = originals[entry.metadata["original_id"]]
        assert shape_reason(original.jinja, entry.jinja) is None
        assert entry.answer_choices == original.answer_choices
        usable = tuple(s for s, r in zip(samples, renders_of(original, samples), strict=True) if r)
        assert all(renders_of(entry, tuple(Sample(s.key, s.record) for s in usable)))
    sheet = (folder / "variants" / "review-paraphrase.md").read_text()
    assert sheet.count("----- response -----") == 3 * (4 + len(entries))

    def built(name: str) -> tuple[dict, set[str]]:
        output = tmp_path / name
        build_plan = load_plan(str(conf), output_override=str(output))
        run_build(spark, build_plan, run_context(build_plan, None))
        manifest = json.loads((output / "_manifest.json").read_text())
        used = {r.template_id for r in
                spark.read.parquet(str(output / "data")).select("template_id").distinct().collect()}  # fmt: skip
        return manifest["config"]["sources"]["nli_en"], used

    source, used = built("unreviewed")
    assert used == set(originals)
    assert {t["kind"] for t in source["templates"].values()} == {"hand-written"}
    assert source["templates_skipped"] == {entry.template_id: "unreviewed" for entry in entries}

    text = variants_path.read_text(encoding="utf-8")
    variants_path.write_text(text.replace("reviewed: false", "reviewed: true", 2), encoding="utf-8")
    reviewed = [entry.template_id for entry in entries[:2]]
    source, used = built("reviewed")
    assert used == set(originals) | set(reviewed)
    for template_id in reviewed:
        listed = source["templates"][template_id]
        assert listed["kind"] == "paraphrase" and listed["metadata"]["reviewed"] is True
        assert listed["metadata"]["original_id"] == "nli/entailment_label"
        assert listed["origin"] == str(variants_path)
    assert set(source["templates_skipped"]) == {e.template_id for e in entries[2:]}
    report(f"template variants: build used {len(reviewed)} reviewed of {len(entries)} variants")

    allowed = load_plan(str(_source_conf(tmp_path, folder, unreviewed_templates="allow")))
    assert {s.template_id for s in allowed.sources[0].render.templates} == (
        set(originals) | {entry.template_id for entry in entries}
    )


def test_response_part_and_several_separators(tmp_path: Path) -> None:
    folder = tmp_path / "templates" / "qa"
    folder.mkdir(parents=True)
    (folder / "short.jinja").write_text("Question: {{ q }} ||| The answer is {{ a }}.\n")
    # Two separators in the text (one per branch): its instruction cannot be cut out alone.
    (folder / "branches.jinja").write_text(
        "{% if a %}Q: {{ q }} ||| {{ a }}{% else %}Q: {{ q }} ||| none{% endif %}\n"
    )
    records = tmp_path / "qa.jsonl"
    records.write_text(
        "".join(json.dumps({"id": str(i), "q": f"q{i}?", "a": f"a{i}"}) + "\n" for i in range(3))
    )
    reworded = "Answer this: {{ q }} ||| It is {{ a }}."
    with chat_stub(
        [("", [variants(reworded, "Answer this: {{ q }} ||| {{ a }} {{ a }}")])]
    ) as stub:
        assert _paraphrase(folder, stub.endpoint, tmp_path, "paraphrase", "--records",
                           str(records), "--n", "2", "--response") == 0  # fmt: skip
        short = next(r for r in stub.requests if "Question:" in r["messages"][1]["content"])
        assert "The answer is {{ a }}." in short["messages"][1]["content"]
    run = json.loads((folder / "variants" / "paraphrase-run.json").read_text())
    by_name = {entry["original_name"]: entry for entry in run["originals"]}
    assert [r["reason"] for r in by_name["qa/short"]["rejected"]] == ["expressions_changed"]
    (spec,) = [
        s
        for s in load_promptsource_file(folder / "variants" / "templates.yaml")
        if s.metadata and s.metadata["original_id"] == "qa/short"
    ]
    assert spec.jinja == reworded
    with chat_stub([("", [variants("unused")])]) as stub:
        assert _paraphrase(folder / "branches.jinja", stub.endpoint, tmp_path, "paraphrase",
                           "--records", str(records)) == 0  # fmt: skip
        assert stub.requests == []
    (entry,) = json.loads((folder / "variants" / "paraphrase-run.json").read_text())["originals"]
    assert entry["problem"][0] == "separators"
