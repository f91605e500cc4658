"""The cost of the seed-collection formats: FLAN's four formats (few-shot exemplars included)
against plain zero-shot rows, on a synthetic N-record NLI source (default 200k) on local[2];
and the pure renderer's single-core rate with each format, with SuperNI encodings on a real
task file, and with inverted pairs.

    .venv/bin/python bench/collections_bench.py [--rows 200000] [--master local[2]]

Reports the build's wall time, the few-shot pool's and the data write's seconds (from the
manifest), with the pools broadcast and joined by (source, template, slot). Writes
bench/results/collections_bench.json. Never run as a test.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


from bench.build_throughput import synthetic_source  # noqa: E402
from jobs.commands.build import run_build, run_context  # noqa: E402
from jobs.config import load_plan  # noqa: E402
from jobs.runner import build_session, configure_logging  # noqa: E402
from jobs.stages import few_shot  # noqa: E402
from udfs.render_batches import FILE_COLUMN, JSON_TEXT_COLUMN, RenderPlan, render_rows  # noqa: E402
from udfs.templating import TemplateSpec  # noqa: E402

FORMATS = "[zsopt, zsnoopt, fsopt, fsnoopt]"
SUPERNI = Path(ROOT.parent / "shared" / "data" / "superni" / "tasks")


def with_formats(conf: Path, formats: str) -> Path:
    registry = conf.parent / "datasets" / "synthetic.yaml"
    text = registry.read_text(encoding="utf-8").split("\nformats:")[0]
    registry.write_text(f"{text.rstrip()}\nformats: {formats}\n", encoding="utf-8")
    return conf


def timed(spark: Any, conf: Path, output: Path) -> dict[str, Any]:
    plan = load_plan(conf, output_override=str(output))
    start = time.perf_counter()
    manifest = run_build(spark, plan, run_context(plan, None)).to_dict()
    seconds = time.perf_counter() - start
    assert manifest["totals"]["reconciled"], manifest["totals"]
    stages = manifest["stages"]["seconds"]
    return {
        "rows": manifest["totals"]["rows"],
        "seconds": round(seconds, 1),
        # The pool is staged in its own step; the exemplars are joined in as data/ is written.
        "few_shot_pool_seconds": round(stages.get("few-shot pool", 0.0), 2),
        "write_data_seconds": round(stages.get("write data", 0.0), 2),
        "formats": manifest["sources"]["synthetic_nli"]["template_formats"],
    }


def rate(plan: RenderPlan, rows: list[dict[str, Any]]) -> dict[str, Any]:
    start = time.perf_counter()
    count = sum(1 for _ in render_rows(plan, rows))
    seconds = time.perf_counter() - start
    return {"rows": count, "rows_per_s": round(count / seconds)}


def renderer_rates(conf: Path, sample: int = 50_000) -> dict[str, Any]:
    plan = load_plan(conf).sources[0].render
    lines = []
    with sorted((conf.parent / "data").glob("*.jsonl"))[0].open(encoding="utf-8") as handle:
        for line in handle:
            lines.append({JSON_TEXT_COLUMN: line.rstrip("\n")})
            if len(lines) == sample:
                break
    results = {
        "zsnoopt": rate(RenderPlan(**{**plan.__dict__, "formats": ("zsnoopt",)}), lines),
        "four_formats": rate(
            RenderPlan(**{**plan.__dict__, "formats": ("zsopt", "zsnoopt", "fsopt", "fsnoopt")}),
            lines,
        ),
    }
    pairs = [
        {JSON_TEXT_COLUMN: json.dumps({"id": f"p{i}", "src_lang": "en", "tgt_lang": "de",
                                       "source": line[JSON_TEXT_COLUMN][:80],
                                       "target": line[JSON_TEXT_COLUMN][80:160]})}
        for i, line in enumerate(lines)
    ]  # fmt: skip
    translate = TemplateSpec(
        "translation/translate", "t", "Translate: {{ source }} ||| {{ target }}"
    )
    common = dict(source="pairs", record_format="json_text", templates=(translate,),
                  templates_per_record=1, seed=0, id_field="id", language_field="src_lang",
                  target_language_field="tgt_lang", target_fields=("target",))  # fmt: skip
    results["translation"] = rate(RenderPlan(**common), pairs)  # type: ignore[arg-type]
    results["translation_inverted"] = rate(
        RenderPlan(**common, invert_pairs=(("source", "target"),)),
        pairs,  # type: ignore[arg-type]
    )
    results["superni"] = superni_rates()
    return results


def superni_rates() -> dict[str, Any]:
    task = json.loads((SUPERNI / "task1582_bless_hypernym_generation.json").read_text())
    instances = task["Instances"]
    rows = [
        {"task_name": "t", "definition": "\n".join(task["Definition"]),
         "positive_examples": json.dumps(task["Positive Examples"]),
         "negative_examples": json.dumps(task["Negative Examples"]),
         "id": item["id"], "input": item["input"], "output": item["output"], FILE_COLUMN: "f"}
        for item in instances
    ]  # fmt: skip
    template = TemplateSpec(
        "superni/tk_instruct", "tk", (ROOT / "templates/superni/tk_instruct.jinja").read_text()
    )
    base = dict(source="superni", record_format="columns", templates=(template,),
                templates_per_record=1, seed=0, id_field="id")  # fmt: skip
    encodings = ("definition", "definition_pos2", "definition_pos2_neg2_explanation", "pos2")
    return {
        "instances": len(rows),
        "definition_only": rate(RenderPlan(**base, superni_encodings=("definition",)), rows),  # type: ignore[arg-type]
        "four_encodings": rate(RenderPlan(**base, superni_encodings=encodings), rows),  # type: ignore[arg-type]
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--work", type=Path, default=ROOT / "out" / "bench-collections")
    args = parser.parse_args()
    configure_logging()
    conf = synthetic_source(args.work / "synthetic", args.rows)
    results: dict[str, Any] = {"rows": args.rows, "master": args.master}
    results["renderer_one_core"] = renderer_rates(conf)
    spark = build_session("instructmill-bench", master=args.master, conf={
        "spark.driver.memory": "6g", "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false", "spark.sql.shuffle.partitions": "8",
    })  # fmt: skip
    try:
        results["zero_shot"] = timed(spark, with_formats(conf, "[zsnoopt]"), args.work / "zs")
        four = with_formats(conf, FORMATS)
        results["four_formats_broadcast"] = timed(spark, four, args.work / "four")
        few_shot.BROADCAST_POOL_CHARS = 0
        results["four_formats_bucket_join"] = timed(spark, four, args.work / "four-bucket")
    finally:
        spark.stop()
    out = ROOT / "bench" / "results" / "collections_bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
