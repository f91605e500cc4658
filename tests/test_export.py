"""``instructmill export`` on the demo build: every format loads with ``datasets`` and gives
back exactly the build's pairs; LLaMA-Factory's ``dataset_info.json`` as its data/README.md
documents it; the dataset card's YAML header and globs; --split, --where, --columns; balanced,
named, ordered shards; reconciliation (exit 3 when it fails); byte-identical reruns; an earlier
export replaced, another folder refused; config errors (exit 2); a mixture output."""

from __future__ import annotations

import argparse
import fnmatch
import gzip
import hashlib
import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import yaml

from jobs.commands.build import run_build, run_context
from jobs.commands.export import add_export_arguments, execute, export_command, run_export
from jobs.config import ConfigError, MixtureCaps, MixtureConfig, load_plan
from jobs.exports import card
from jobs.exports.formats import FORMATS
from jobs.runner import EXIT_CONFIG, EXIT_OK, EXIT_UNRECONCILED
from tests.conftest import ROOT

pytestmark = pytest.mark.spark

# LLaMA-Factory's extras/constants.py: the reader of a dataset file, by its last extension.
LLAMA_FACTORY_FILE_TYPES = {
    "arrow": "arrow",
    "csv": "csv",
    "json": "json",
    "jsonl": "json",
    "parquet": "parquet",
    "txt": "text",
}
SHARD_NAME = re.compile(
    r"^(?P<split>\w+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.(jsonl|jsonl\.gz|parquet)$"
)

EXPORTS: dict[str, dict[str, Any]] = {
    "messages": {"fmt": "trl-messages", "columns": ("id",), "shard_rows": 100},
    "messages-parquet": {
        "fmt": "trl-messages",
        "columns": ("id", "language"),
        "file_format": "parquet",
        "shard_rows": 200,
    },
    "prompt-completion-gzip": {
        "fmt": "trl-prompt-completion",
        "columns": ("id",),
        "compression": "gzip",
    },
    "chat-parquet": {
        "fmt": "trl-prompt-completion-chat",
        "columns": ("id",),
        "file_format": "parquet",
    },
    "alpaca": {"fmt": "alpaca", "columns": ("id",), "shard_rows": 150},
    "aya": {"fmt": "aya", "columns": ("id",)},
    "french-train": {
        "fmt": "trl-prompt-completion",
        "columns": ("id", "language", "split"),
        "split": "train",
        "where": "language = 'fr'",
    },
    "heldout": {"fmt": "trl-messages", "columns": ("id",), "split": "heldout"},
    "japanese-alpaca": {"fmt": "alpaca", "columns": ("id",), "where": "language = 'ja'"},
}
# Exported through the command line's parser and execute() (the session stays open).
CLI_EXPORT = ["--format", "sharegpt", "--columns", "id, source", "--shard-rows", "200"]


@pytest.fixture(scope="module")
def hf_datasets(tmp_path_factory: pytest.TempPathFactory) -> Any:
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import datasets

    datasets.disable_progress_bars()
    return datasets


@pytest.fixture(scope="module")
def demo(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("demo")
    plan = load_plan(ROOT / "conf" / "demo.yaml", output_override=str(out))
    run_build(spark, plan, run_context(plan, None))
    rows = ds.dataset(out / "data", partitioning="hive").to_table().to_pylist()
    manifest = json.loads((out / "_manifest.json").read_text(encoding="utf-8"))
    return {"out": str(out), "rows": {row["id"]: row for row in rows}, "run_id": manifest["run_id"]}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="instructmill export")
    add_export_arguments(parser)
    return parser.parse_args(argv)


@pytest.fixture(scope="module")
def exports(
    spark: Any, demo: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("exports")
    done = {
        name: (root / name, run_export(spark, demo["out"], str(root / name), **kwargs))
        for name, kwargs in EXPORTS.items()
    }
    args = parse(["--input", demo["out"], "--output", str(root / "sharegpt"), *CLI_EXPORT])
    assert args.handler is export_command
    assert execute(spark, args) == EXIT_OK
    done["sharegpt"] = (
        root / "sharegpt",
        json.loads((root / "sharegpt" / "_export.json").read_text(encoding="utf-8")),
    )
    return done


def load(
    hf: Any, folder: Path, manifest: dict[str, Any], cache: Path
) -> dict[str, list[dict[str, Any]]]:
    builder = "parquet" if manifest["file_format"] == "parquet" else "json"
    files = {
        split: [str(folder / f["path"]) for f in entry["files"]]
        for split, entry in manifest["splits"].items()
        if entry["files"]
    }
    loaded = hf.load_dataset(builder, data_files=files, cache_dir=str(cache))
    return {split: loaded[split].to_list() for split in files}


def pair(fmt: str, row: dict[str, Any]) -> tuple[str, str]:
    """(instruction, response) as the format holds them, checking the format's roles."""
    if fmt == "trl-messages":
        assert [turn["role"] for turn in row["messages"]] == ["user", "assistant"]
        return row["messages"][0]["content"], row["messages"][1]["content"]
    if fmt == "trl-prompt-completion":
        return row["prompt"], row["completion"]
    if fmt == "trl-prompt-completion-chat":
        assert [t["role"] for t in row["prompt"]] == ["user"] and [
            t["role"] for t in row["completion"]
        ] == ["assistant"]
        return row["prompt"][0]["content"], row["completion"][0]["content"]
    if fmt == "alpaca":
        assert row["input"] == ""
        return row["instruction"], row["output"]
    if fmt == "sharegpt":
        assert [turn["from"] for turn in row["conversations"]] == ["human", "gpt"]
        return row["conversations"][0]["value"], row["conversations"][1]["value"]
    assert fmt == "aya"
    return row["inputs"], row["targets"]


def expected(
    demo: dict[str, Any], split: str = "all", language: str | None = None
) -> dict[str, dict[str, Any]]:
    return {
        key: row
        for key, row in demo["rows"].items()
        if split in ("all", row["split"]) and language in (None, row["language"])
    }


def selection(name: str) -> tuple[str, str | None]:
    kwargs = EXPORTS.get(name, {})
    where = kwargs.get("where")
    language = where.split("'")[1] if where else None
    return kwargs.get("split", "all"), language


def test_every_export_gives_back_exactly_the_builds_pairs(
    exports: dict[str, Any], demo: dict[str, Any], hf_datasets: Any, tmp_path: Path, report: Any
) -> None:
    compared = 0
    for name, (folder, manifest) in exports.items():
        want = expected(demo, *selection(name))
        loaded = load(hf_datasets, folder, manifest, tmp_path / name)
        got: dict[str, tuple[str, str]] = {}
        for split, rows in loaded.items():
            for row in rows:
                assert row["id"] not in got
                assert demo["rows"][row["id"]]["split"] == split
                got[row["id"]] = pair(manifest["format"], row)
        assert got == {key: (row["instruction"], row["response"]) for key, row in want.items()}, (
            name
        )
        assert manifest["totals"] == {
            "selected": len(want),
            "written": len(want),
            "files": manifest["totals"]["files"],
            "reconciled": True,
        }
        compared += len(got)
    report(f"export: {compared} rows compared with the build over {len(exports)} exports")


def test_columns_are_kept_beside_the_pair_in_order(
    exports: dict[str, Any], demo: dict[str, Any], hf_datasets: Any, tmp_path: Path
) -> None:
    folder, manifest = exports["french-train"]
    rows = load(hf_datasets, folder, manifest, tmp_path)["train"]
    assert {tuple(row) for row in rows} == {("prompt", "completion", "id", "language", "split")}
    assert {(row["language"], row["split"]) for row in rows} == {("fr", "train")}
    first = file_rows(folder / manifest["splits"]["train"]["files"][0]["path"])[0]
    assert list(first) == ["prompt", "completion", "id", "language", "split"]
    folder, manifest = exports["messages-parquet"]
    table = pq.read_table(folder / manifest["splits"]["train"]["files"][0]["path"])
    assert table.column_names == ["messages", "id", "language"]


def test_aya_columns(
    exports: dict[str, Any], demo: dict[str, Any], hf_datasets: Any, tmp_path: Path
) -> None:
    folder, manifest = exports["aya"]
    loaded = load(hf_datasets, folder, manifest, tmp_path)
    for rows in loaded.values():
        for row in rows:
            assert list(row) == [
                "inputs",
                "targets",
                "template_id",
                "language",
                "script",
                "task_type",
                "dataset_name",
                "split",
                "id",
            ]
            built = demo["rows"][row["id"]]
            assert (row["template_id"], row["language"], row["script"], row["dataset_name"], row["split"]) == (
                built["template_id"], built["language"], built["script"], built["source"], built["split"],
            )  # fmt: skip
    task_types = {
        (demo["rows"][r["id"]]["task_cluster"], r["task_type"])
        for rows in loaded.values()
        for r in rows
    }
    assert {
        ("sentiment", "sentiment-analysis"),
        ("entailment", "natural-language-inference"),
        ("extractive_qa", "extractive-qa"),
        ("translation", "translation"),
    } <= task_types
    assert len({cluster for cluster, _ in task_types}) == len(task_types)


def shard_files(folder: Path) -> list[str]:
    return sorted(
        str(path.relative_to(folder)) for path in (folder / "data").rglob("*") if path.is_file()
    )


def file_rows(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    data = path.read_bytes()
    text = gzip.decompress(data) if path.name.endswith(".gz") else data
    return [json.loads(line) for line in text.decode("utf-8").splitlines()]


def test_shards_are_named_balanced_ordered_and_complete(exports: dict[str, Any]) -> None:
    for name, (folder, manifest) in exports.items():
        listed = [f["path"] for entry in manifest["splits"].values() for f in entry["files"]]
        assert shard_files(folder) == sorted(listed), name
        assert sorted(p.name for p in folder.iterdir()) == sorted(
            [
                "README.md",
                "_export.json",
                "data",
                *(["dataset_info.json"] if manifest["dataset_info"] else []),
            ]
        )
        assert not [p for p in folder.rglob(".*")], "no checksum or hidden files"
        for split, entry in manifest["splits"].items():
            sizes = []
            for index, file in enumerate(entry["files"]):
                match = SHARD_NAME.match(file["path"].rsplit("/", 1)[-1])
                assert (
                    match
                    and match["split"] == split
                    and int(match["index"]) == index
                    and int(match["count"]) == len(entry["files"])
                )
                assert file["path"].startswith(f"{FORMATS[manifest['format']].folder(split)}/")
                rows = file_rows(folder / file["path"])
                assert len(rows) == file["rows"]
                ids = [row["id"] for row in rows]
                assert ids == sorted(ids)
                sizes.append(len(rows))
            assert len(sizes) == -(-entry["selected"] // manifest["shard_rows"])
            assert not sizes or (
                max(sizes) <= manifest["shard_rows"] and max(sizes) - min(sizes) <= 1
            )
    assert [len(e["files"]) for e in exports["messages"][1]["splits"].values()] == [
        4,
        1,
    ]  # 360, 90 rows


def test_split_and_where_select_rows_and_an_empty_split_is_listed(exports: dict[str, Any]) -> None:
    assert list(exports["french-train"][1]["splits"]) == ["train"]
    assert list(exports["heldout"][1]["splits"]) == ["heldout"]
    japanese = exports["japanese-alpaca"][1]
    assert japanese["splits"]["heldout"] == {
        "folder": "data/heldout",
        "selected": 0,
        "written": 0,
        "files": [],
        "reconciled": True,
    }
    assert japanese["splits"]["train"]["written"] == 12
    info = json.loads(
        (exports["japanese-alpaca"][0] / "dataset_info.json").read_text(encoding="utf-8")
    )
    assert list(info) == ["instructmill_train"]


def header(folder: Path) -> dict[str, Any]:
    text = (folder / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])  # type: ignore[no-any-return]


def test_dataset_card_header_parses_and_its_globs_match_the_files(
    exports: dict[str, Any], demo: dict[str, Any]
) -> None:
    for name, (folder, manifest) in exports.items():
        meta = header(folder)
        (config,) = meta["configs"]
        assert config["config_name"] == "default"
        files = shard_files(folder)
        matched = {
            entry["split"]: sorted(f for f in files if fnmatch.fnmatch(f, entry["path"]))
            for entry in config["data_files"]
        }
        assert matched == {
            split: sorted(f["path"] for f in e["files"])
            for split, e in manifest["splits"].items()
            if e["files"]
        }, name
        want = expected(demo, *selection(name))
        assert meta["language"] == sorted({row["language"] for row in want.values()} - {"und"})
        assert meta["license"] == "cc-by-4.0"
        assert meta["size_categories"] == ["n<1K"]
        assert meta["task_categories"][0] == "text-generation"
    meta = header(exports["messages"][0])
    assert meta["task_categories"] == [
        "text-generation",
        "question-answering",
        "text-classification",
        "translation",
    ]
    body = (exports["messages"][0] / "README.md").read_text(encoding="utf-8")
    assert demo["run_id"] in body and "load_dataset" in body and "Non-commercial" not in body
    by_language = Counter((row["language"], row["split"]) for row in demo["rows"].values())
    en = [by_language[("en", "train")], by_language[("en", "heldout")]]
    assert f"| en | {en[0]} | {en[1]} | {sum(en)} |" in body


def test_the_card_loads_as_a_hub_dataset_folder(
    exports: dict[str, Any], hf_datasets: Any, tmp_path: Path
) -> None:
    for name in ("prompt-completion-gzip", "chat-parquet", "alpaca"):
        folder, manifest = exports[name]
        loaded = hf_datasets.load_dataset(str(folder), cache_dir=str(tmp_path / name))
        assert {split: len(rows) for split, rows in loaded.items()} == {
            s: e["written"] for s, e in manifest["splits"].items()
        }


def test_llama_factory_dataset_info(
    exports: dict[str, Any], demo: dict[str, Any], hf_datasets: Any, tmp_path: Path
) -> None:
    for name in ("alpaca", "sharegpt"):
        folder, manifest = exports[name]
        info = json.loads((folder / "dataset_info.json").read_text(encoding="utf-8"))
        assert list(info) == ["instructmill_train", "instructmill_heldout"]
        for split, entry in ((key[len("instructmill_") :], value) for key, value in info.items()):
            assert entry["formatting"] == name
            if name == "alpaca":
                assert entry["columns"] == {
                    "prompt": "instruction",
                    "query": "input",
                    "response": "output",
                }
                assert "tags" not in entry
            else:
                assert entry["columns"] == {"messages": "conversations"}
                assert entry["tags"] == {
                    "role_tag": "from",
                    "content_tag": "value",
                    "user_tag": "human",
                    "assistant_tag": "gpt",
                }
            # As LLaMA-Factory's loader reads a file_name that is a folder: every file in it, one reader.
            local = folder / entry["file_name"]
            assert local.is_dir()
            names = os.listdir(local)
            kinds = {LLAMA_FACTORY_FILE_TYPES.get(n.split(".")[-1]) for n in names}
            assert kinds == {"json"}
            rows = hf_datasets.load_dataset(
                "json",
                data_files=[str(local / n) for n in names],
                split="train",
                cache_dir=str(tmp_path / f"{name}-{split}"),
            ).to_list()
            assert len(rows) == manifest["splits"][split]["written"]
            for row in rows:
                built = demo["rows"][row["id"]]
                if name == "alpaca":
                    prompt, query, response = (
                        row[entry["columns"][k]] for k in ("prompt", "query", "response")
                    )
                    assert (prompt, query, response) == (
                        built["instruction"],
                        "",
                        built["response"],
                    )
                else:
                    tags = entry["tags"]
                    turns = row[entry["columns"]["messages"]]
                    assert [t[tags["role_tag"]] for t in turns] == [
                        tags["user_tag"],
                        tags["assistant_tag"],
                    ]
                    assert [t[tags["content_tag"]] for t in turns] == [
                        built["instruction"],
                        built["response"],
                    ]
                    assert row["source"] == built["source"]
    assert "dataset_info.json" not in os.listdir(exports["messages"][0])


def digests(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in folder.rglob("*")
        if path.is_file() and path.name != "_export.json"
    }


def test_reruns_are_byte_identical(
    spark: Any, exports: dict[str, Any], demo: dict[str, Any], tmp_path: Path
) -> None:
    for name in ("messages", "prompt-completion-gzip", "chat-parquet"):
        folder = tmp_path / name
        run_export(spark, demo["out"], str(folder), **EXPORTS[name])
        assert digests(folder) == digests(exports[name][0]), name


def test_an_earlier_export_is_replaced_and_another_folder_refused(
    spark: Any, demo: dict[str, Any], tmp_path: Path
) -> None:
    folder = tmp_path / "again"
    run_export(spark, demo["out"], str(folder), "alpaca", shard_rows=100)
    assert len(shard_files(folder)) == 5
    (folder / "_staging-export").mkdir()  # as a killed export leaves it
    manifest = run_export(spark, demo["out"], str(folder), "trl-messages", split="heldout")
    assert shard_files(folder) == ["data/heldout-00000-of-00001.jsonl"]
    assert sorted(os.listdir(folder)) == ["README.md", "_export.json", "data"]
    assert manifest["totals"]["reconciled"]
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(ConfigError, match="not empty and holds no earlier export"):
        run_export(spark, demo["out"], str(other), "alpaca")
    assert os.listdir(other) == ["notes.txt"]


def test_bad_where_and_bad_columns_are_config_errors(
    spark: Any, demo: dict[str, Any], tmp_path: Path, capsys: Any
) -> None:
    out = str(tmp_path / "bad")
    with pytest.raises(ConfigError, match=r"--where 'no_such_column = 1'"):
        run_export(spark, demo["out"], out, "alpaca", where="no_such_column = 1")
    for where in ("language = ", "language"):
        assert (
            execute(
                spark,
                parse(
                    [
                        "--input",
                        demo["out"],
                        "--output",
                        out,
                        "--format",
                        "alpaca",
                        "--where",
                        where,
                    ]
                ),
            )
            == EXIT_CONFIG
        )
    assert "--where" in capsys.readouterr().err
    # Unknown columns fail before Spark starts: export_command returns without a session.
    args = parse(
        ["--input", demo["out"], "--output", out, "--format", "aya", "--columns", "id,langauge"]
    )
    assert export_command(args) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "no output column 'langauge'" in err and "task_cluster" in err
    for argv in (["--file-format", "parquet"], ["--compression", "gzip"], ["--shard-rows", "0"]):
        assert (
            export_command(
                parse(["--input", demo["out"], "--output", out, "--format", "alpaca", *argv])
            )
            == EXIT_CONFIG
        )
    assert not Path(out).exists()


def test_unreconciled_export_exits_3(
    spark: Any, demo: dict[str, Any], tmp_path: Path, monkeypatch: Any
) -> None:
    from jobs.exports import shards

    counted = shards.count_written

    def one_row_short(*args: Any, **kwargs: Any) -> dict[str, int]:
        found = counted(*args, **kwargs)
        first = sorted(found)[0]
        return {**found, first: found[first] - 1}

    monkeypatch.setattr(shards, "count_written", one_row_short)
    out = tmp_path / "short"
    assert (
        execute(
            spark, parse(["--input", demo["out"], "--output", str(out), "--format", "trl-messages"])
        )
        == EXIT_UNRECONCILED
    )
    manifest = json.loads((out / "_export.json").read_text(encoding="utf-8"))
    assert manifest["totals"]["reconciled"] is False
    assert {s: e["reconciled"] for s, e in manifest["splits"].items()} == {
        "train": True,
        "heldout": False,
    }


def test_a_mixture_output_exports(spark: Any, demo: dict[str, Any], tmp_path: Path) -> None:
    from jobs.commands.mix import run_mix

    mixture = tmp_path / "mix"
    mixed = run_mix(
        spark,
        MixtureConfig(seed=3, caps=MixtureCaps(by="task", default=30)),
        demo["out"],
        str(mixture),
    )
    rows = (
        ds.dataset(mixture / "data", partitioning="hive")
        .to_table(columns=["id", "instruction"])
        .to_pylist()
    )
    manifest = run_export(
        spark, str(mixture), str(tmp_path / "export"), "trl-prompt-completion", columns=("id",)
    )
    exported = [
        row
        for f in manifest["splits"]["train"]["files"]
        for row in file_rows(tmp_path / "export" / f["path"])
    ]
    assert {(r["id"], r["prompt"]) for r in exported} == {(r["id"], r["instruction"]) for r in rows}
    assert manifest["input_job"] == "mix" and manifest["splits"]["heldout"]["written"] == 0
    assert f"mixture run `{mixed.run_id}`" in (tmp_path / "export" / "README.md").read_text(
        encoding="utf-8"
    )


def test_card_licenses_warning_and_sizes() -> None:
    counts = {
        ("train", "et", "linguistic_analysis", "ud_et", "CC-BY-NC-SA-4.0"): 1500,
        ("train", "it", "linguistic_analysis", "ud_it", "CC-BY-4.0"): 700,
        (
            "heldout",
            "und",
            "misc",
            "superni",
            "per-task (see each task file's Instance License)",
        ): 3,
    }
    manifest = {
        "input": "in", "input_job": "build", "input_run_id": "r1", "format": "alpaca",
        "format_summary": FORMATS["alpaca"].summary, "file_format": "jsonl", "compression": None,
        "split": "all", "where": None, "columns": [],
        "splits": {
            "train": {"folder": "data/train", "written": 2200, "files": [{"path": "data/train/train-00000-of-00001.jsonl", "rows": 2200}]},
            "heldout": {"folder": "data/heldout", "written": 3, "files": []},
        },
        "totals": {"written": 2203},
    }  # fmt: skip
    text = card.dataset_card(manifest, counts)
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["license"] == ["cc-by-4.0", "cc-by-nc-sa-4.0", "other"]
    assert meta["language"] == ["et", "it"]
    assert meta["size_categories"] == ["1K<n<10K"]
    assert meta["task_categories"] == ["text-generation", "token-classification"]
    assert meta["configs"][0]["data_files"] == [{"split": "train", "path": "data/train/train-*"}]
    assert "Non-commercial licenses" in text and "1,500 rows" in text and "ud_et" in text
    assert card.dataset_info(manifest) == {
        "instructmill_train": {"file_name": "data/train", **card.LLAMA_FACTORY["alpaca"]}
    }
    assert [card.size_category(n) for n in (0, 999, 1000, 10**6, 10**12)] == [
        "n<1K",
        "n<1K",
        "1K<n<10K",
        "1M<n<10M",
        "n>1T",
    ]
    assert card.non_commercial(["cc-by-nc-4.0", "cc-by-sa-4.0", "unclear"]) == ["cc-by-nc-4.0"]
    assert {name for name, f in FORMATS.items() if f.llama_factory} == set(card.LLAMA_FACTORY)
