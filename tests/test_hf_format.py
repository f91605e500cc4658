"""format hf: Hugging Face datasets folders written by the real `datasets` library (save_to_disk,
several shards, and the Hub's two Parquet layouts) read with Spark and pyarrow give the rows
`datasets` itself loads, with ClassLabel names added; wrong folders and splits fail on the
driver naming the choices."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from jobs.config import ConfigError, load_plan
from jobs.config.plan import SourcePlan
from udfs.hf_layout import (
    HfLayoutError,
    arrow_batches,
    label_columns,
    label_names,
    resolve_hf,
    spark_schema,
)
from udfs.render_batches import FILE_COLUMN

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the tests never reach the Hub
datasets = pytest.importorskip("datasets")
datasets.disable_progress_bars()

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "data" / "samples" / "hf"
LABELS = ["negative", "positive", "mixed"]
TAGS = ["food", "service", "price"]
FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "text": datasets.Value("string"),
        "label": datasets.ClassLabel(names=LABELS),
        "tags": datasets.Sequence(datasets.ClassLabel(names=TAGS)),
        "answers": datasets.Sequence(
            {"text": datasets.Value("string"), "answer_start": datasets.Value("int32")}
        ),
        "votes": datasets.Value("int64"),
        "stars": datasets.Value("int32"),
        "score": datasets.Value("float32"),
        "verified": datasets.Value("bool"),
    }
)
WORDS = "soup bread waiter bill table noodles coffee price queue garden".split()


def records(count: int, offset: int) -> dict[str, list[Any]]:
    rows = []
    for i in range(offset, offset + count):
        text = f"The {WORDS[i % 10]} and the {WORDS[(i * 3) % 10]} were fine, said guest {i}."
        rows.append(
            {
                "id": f"r{i:03d}",
                "text": text,
                "label": -1 if i % 7 == 0 else i % 3,  # -1: datasets' "no label"
                "tags": [j % 3 for j in range(i % 4)],
                "answers": {"text": [WORDS[i % 10]], "answer_start": [text.index(WORDS[i % 10])]},
                "votes": 10_000_000_000 + i,
                "stars": i % 5,
                "score": None if i % 5 == 0 else i / 8,
                "verified": None if i % 6 == 0 else i % 2 == 0,
            }
        )
    return {name: [row[name] for row in rows] for name in FEATURES}


def dataset(count: int, offset: int = 0, split: str | None = None) -> Any:
    return datasets.Dataset.from_dict(records(count, offset), features=FEATURES, split=split)


@pytest.fixture(scope="module")
def hf_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A DatasetDict and a Dataset saved in 2 shards each, and the dict's Parquet exports."""
    root = tmp_path_factory.mktemp("hf")
    splits = {"train": dataset(23, 0, "train"), "test": dataset(11, 100, "test")}
    datasets.DatasetDict(splits).save_to_disk(
        str(root / "dict"), num_shards={"train": 2, "test": 2}
    )
    dataset(17, 200, "train").save_to_disk(str(root / "single"), num_shards=2)
    for split, data in splits.items():
        for shard in range(2):
            part = data.shard(2, shard, contiguous=True)
            convert = root / "convert" / "reviews" / split / f"{shard:04d}.parquet"
            convert.parent.mkdir(parents=True, exist_ok=True)
            part.to_parquet(str(convert))
            hub = root / "hub" / "data" / f"{split}-{shard:05d}-of-00002.parquet"
            hub.parent.mkdir(parents=True, exist_ok=True)
            part.to_parquet(str(hub))
    return {"root": root, "dict": root / "dict", "single": root / "single",
            "convert": root / "convert", "hub": root / "hub"}  # fmt: skip


def source_for(tmp_path: Path, folder: Path, split: str | None = None) -> SourcePlan:
    """The SourcePlan of a registry naming ``folder``, as a user's conf gives it."""
    conf = tmp_path / f"conf-{len(list(tmp_path.glob('conf-*')))}"
    (conf / "datasets").mkdir(parents=True)
    (conf / "echo.jinja").write_text("{{ text }} ||| {{ text }}\n", encoding="utf-8")
    registry = {"name": "hf_source", "path": str(folder), "format": "hf", "language": "en",
                "task": "sentiment", "task_cluster": "sentiment", "license": "CC-BY-4.0",
                "templates": ["../echo.jinja"], **({"split": split} if split else {})}  # fmt: skip
    (conf / "datasets" / "hf.yaml").write_text(json.dumps(registry), encoding="utf-8")
    pipeline = conf / "pipeline.yaml"
    pipeline.write_text("sources: [datasets/*.yaml]\noutput: ../out\n", encoding="utf-8")
    return load_plan(pipeline).sources[0]


def canonical(rows: list[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps(row, sort_keys=True, ensure_ascii=False) for row in rows)


def read_rows(spark: Any, source: SourcePlan) -> tuple[Any, list[dict[str, Any]]]:
    from jobs.io.readers.hf import read_hf

    frame = read_hf(spark, source)
    return frame, [row.asDict(recursive=True) for row in frame.collect()]


def check_names(rows: list[dict[str, Any]], features: Any) -> None:
    """Every *_name column holds the ClassLabel's name of its row's label, null for -1."""
    labels = label_columns(features.to_dict())
    for row in rows:
        for column, label in labels.items():

            def name(value: int, names: tuple[str, ...] = label.names) -> str | None:
                return names[value] if 0 <= value < len(names) else None

            value = row.pop(label.name_column(column))
            expected = [name(v) for v in row[column]] if label.is_list else name(row[column])
            assert value == expected, (column, row)


def data_of(rows: list[dict[str, Any]], features: Any) -> list[str]:
    """The record's own columns: without the file column, after checking the name columns."""
    rows = [{k: v for k, v in row.items() if k != FILE_COLUMN} for row in rows]
    check_names(rows, features)
    return canonical(rows)


# --- layout resolution and labels, no Spark ---------------------------------------------


def test_resolves_save_to_disk_in_shard_order(hf_folders: dict[str, Path]) -> None:
    single = resolve_hf(str(hf_folders["single"]))
    assert single.kind == "arrow" and single.split == "train"
    assert [Path(f).name for f in single.files] == [
        "data-00000-of-00002.arrow", "data-00001-of-00002.arrow"]  # fmt: skip
    assert single.features == FEATURES.to_dict()
    test = resolve_hf(str(hf_folders["dict"]), "test")
    assert test.split == "test" and all("/dict/test/" in f for f in test.files)
    assert len(test.files) == 2


def test_resolves_both_hub_parquet_layouts(hf_folders: dict[str, Path]) -> None:
    convert = resolve_hf(str(hf_folders["convert"]), "train")
    assert convert.kind == "parquet" and convert.config == "reviews"
    assert [Path(f).name for f in convert.files] == ["0000.parquet", "0001.parquet"]
    assert convert.features == FEATURES.to_dict()  # from the schema's b"huggingface" metadata
    at_config = resolve_hf(str(hf_folders["convert"] / "reviews"), "test")
    assert at_config.files == resolve_hf(str(hf_folders["convert"]), "test").files
    hub = resolve_hf(str(hf_folders["hub"]), "test")
    assert [Path(f).name for f in hub.files] == [
        "test-00000-of-00002.parquet", "test-00001-of-00002.parquet"]  # fmt: skip
    assert resolve_hf(str(hf_folders["hub"] / "data"), "train").split == "train"


def test_wrong_folders_and_splits_name_the_choices(
    hf_folders: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(HfLayoutError, match="does not exist"):
        resolve_hf(str(tmp_path / "absent"))
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "notes.txt").write_text("hello", encoding="utf-8")
    with pytest.raises(HfLayoutError, match=r"not a Hugging Face datasets folder.*notes\.txt"):
        resolve_hf(str(tmp_path / "notes"))
    with pytest.raises(HfLayoutError, match=r"no split 'tset'.*nearest first\): test, train"):
        resolve_hf(str(hf_folders["dict"]), "tset")
    with pytest.raises(HfLayoutError, match=r"has the splits train, test: set split:"):
        resolve_hf(str(hf_folders["dict"]))
    with pytest.raises(HfLayoutError, match=r"no split 'validation'.*: train, test"):
        resolve_hf(str(hf_folders["hub"]), "validation")
    with pytest.raises(HfLayoutError, match=r"of split 'train', not 'test'"):
        resolve_hf(str(hf_folders["single"]), "test")
    several = hf_folders["convert"].parent / "several"
    for config in ("reviews", "reviews_fr"):
        (several / config / "train").mkdir(parents=True, exist_ok=True)
        dataset(3).to_parquet(str(several / config / "train" / "0000.parquet"))
    with pytest.raises(HfLayoutError, match=r"several configs \(reviews, reviews_fr\): point"):
        resolve_hf(str(several), "train")
    assert resolve_hf(str(several / "reviews_fr")).config is None


def test_missing_data_files_are_named(tmp_path: Path) -> None:
    dataset(4).save_to_disk(str(tmp_path / "saved"), num_shards=2)
    (tmp_path / "saved" / "data-00001-of-00002.arrow").unlink()
    with pytest.raises(HfLayoutError, match=r"missing: data-00001-of-00002\.arrow"):
        resolve_hf(str(tmp_path / "saved"))


def test_label_names_in_old_and_new_feature_spellings() -> None:
    new = FEATURES.to_dict()  # datasets 4+: {"_type": "List", "feature": ...}
    assert new["tags"]["_type"] == "List"
    assert label_names(new) == {"label": LABELS, "tags": TAGS}
    assert label_columns(new)["tags"].is_list and not label_columns(new)["label"].is_list
    old = {  # datasets 2-3 wrote Sequence, with length and id
        "label": {"num_classes": 2, "names": ["no", "yes"], "id": None, "_type": "ClassLabel"},
        "tags": {"feature": {"names": TAGS, "_type": "ClassLabel"}, "length": -1, "id": None,
                 "_type": "Sequence"},
        "answers": {"feature": {"text": {"dtype": "string", "_type": "Value"}},
                    "length": -1, "_type": "Sequence"},
        "large": {"feature": {"num_classes": 3, "_type": "ClassLabel"}, "_type": "LargeList"},
        "shorthand": [{"names": ["x"], "_type": "ClassLabel"}],
    }  # fmt: skip
    assert label_names(old) == {"label": ["no", "yes"], "tags": TAGS, "large": ["0", "1", "2"],
                                "shorthand": ["x"]}  # fmt: skip
    assert label_columns(old)["tags"].name_column("tags") == "tags_names"
    assert label_names(None) == {}


def test_arrow_batches_rechunk_and_plain_types(tmp_path: Path) -> None:
    schema = pa.schema([("text", pa.large_string()), ("ids", pa.large_list(pa.uint32()))])
    path = tmp_path / "big.arrow"
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        writer.write_table(pa.table({"text": [str(i) for i in range(25_000)],
                                     "ids": [[i] for i in range(25_000)]}, schema=schema))  # fmt: skip
    target = spark_schema(schema).append(pa.field(FILE_COLUMN, pa.string()))
    assert target.field("text").type == pa.string()
    assert target.field("ids").type == pa.list_(pa.int64())
    batches = list(arrow_batches([(str(path), "big")], target, FILE_COLUMN))
    assert max(batch.num_rows for batch in batches) <= 10_000
    table = pa.Table.from_batches(batches)
    assert table.schema == target and table.num_rows == 25_000
    assert table.column("ids").to_pylist()[-1] == [24_999]
    assert set(table.column(FILE_COLUMN).to_pylist()) == {"big"}


# --- Spark reads ------------------------------------------------------------------------


@pytest.mark.spark
def test_read_hf_equals_datasets_on_every_layout(
    spark: Any, hf_folders: dict[str, Path], tmp_path: Path
) -> None:
    saved = datasets.load_from_disk(str(hf_folders["dict"]))
    cache = str(tmp_path / "cache")
    for split in ("train", "test"):
        expected = canonical(saved[split].to_list())
        files = sorted(str(f) for f in (hf_folders["hub"] / "data").glob(f"{split}-*.parquet"))
        exported = datasets.load_dataset("parquet", data_files={split: files}, cache_dir=cache)
        assert exported[split].features == FEATURES
        assert canonical(exported[split].to_list()) == expected
        for folder in ("dict", "convert", "hub"):
            frame, rows = read_rows(spark, source_for(tmp_path, hf_folders[folder], split))
            assert data_of(rows, FEATURES) == expected, (folder, split)
            types = dict(frame.dtypes)
            assert types["votes"] == "bigint" and types["stars"] == "int"
            assert types["score"] == "float" and types["verified"] == "boolean"
            assert types["label"] == "bigint" and types["label_name"] == "string"
            assert types["tags_names"] == "array<string>"
            assert types["answers"] == "struct<text:array<string>,answer_start:array<int>>"
            layout = resolve_hf(str(hf_folders[folder]), split)
            # Arrow and Parquet rows name their file alike (Spark's _metadata.file_path).
            assert {row[FILE_COLUMN] for row in rows} == {f"file:{f}" for f in layout.files}


@pytest.mark.spark
def test_read_hf_single_dataset_reads_each_shard(
    spark: Any, hf_folders: dict[str, Path], tmp_path: Path
) -> None:
    frame, rows = read_rows(spark, source_for(tmp_path, hf_folders["single"]))
    loaded = datasets.load_from_disk(str(hf_folders["single"]))
    assert data_of(rows, FEATURES) == canonical(loaded.to_list())
    assert frame.columns[-1] == FILE_COLUMN
    by_file = {}
    for row in rows:
        by_file.setdefault(Path(row[FILE_COLUMN]).name, []).append(row["id"])
    assert sorted(map(len, by_file.values())) == [8, 9]  # 17 rows in 2 shards
    unlabelled = next(row for row in rows if row["id"] == "r203")  # 203 % 7 == 0
    assert unlabelled["label"] == -1 and unlabelled["label_name"] is None
    assert by_file.keys() == {"data-00000-of-00002.arrow", "data-00001-of-00002.arrow"}
    assert {row["label_name"] for row in rows} == {None, *LABELS}


@pytest.mark.spark
def test_existing_name_column_is_kept_and_reserved_columns_fail(spark: Any, tmp_path: Path) -> None:
    from jobs.io.readers import SourceReadError

    features = datasets.Features({"label": datasets.ClassLabel(names=["no", "yes"]),
                                  "label_name": datasets.Value("string")})  # fmt: skip
    data = datasets.Dataset.from_dict({"label": [0, 1], "label_name": ["mine", "ours"]}, features)
    data.save_to_disk(str(tmp_path / "named"))
    _, rows = read_rows(spark, source_for(tmp_path, tmp_path / "named"))
    assert sorted(row["label_name"] for row in rows) == ["mine", "ours"]
    reserved = datasets.Dataset.from_dict({"text": ["a"], FILE_COLUMN: ["b"]})
    reserved.save_to_disk(str(tmp_path / "reserved"))
    (tmp_path / "reserved_pq" / "data").mkdir(parents=True)
    reserved.to_parquet(str(tmp_path / "reserved_pq" / "data" / "train-00000-of-00001.parquet"))
    for folder in ("reserved", "reserved_pq"):
        with pytest.raises(SourceReadError, match=r"reserved for instructmill"):
            read_rows(spark, source_for(tmp_path, tmp_path / folder))
    # A wrong split is a config error of the registry, before Spark starts.
    with pytest.raises(ConfigError, match=r"hf.yaml: path: .*no split 'dev'"):
        source_for(tmp_path, tmp_path / "reserved_pq", "dev")


@pytest.mark.spark
def test_shards_that_disagree_fail_before_the_read(
    spark: Any, hf_folders: dict[str, Path], tmp_path: Path
) -> None:
    from jobs.io.readers import SourceReadError

    folder = tmp_path / "mixed"
    shutil.copytree(hf_folders["single"], folder)
    other = pa.table({"id": ["x"], "text": ["a text"]})
    path = str(folder / "data-00001-of-00002.arrow")
    with pa.OSFile(path, "wb") as sink, pa.ipc.new_stream(sink, other.schema) as writer:
        writer.write_table(other)
    with pytest.raises(SourceReadError, match=r"data-00001-of-00002.arrow has the schema"):
        read_rows(spark, source_for(tmp_path, folder))


@pytest.mark.spark
def test_shipped_fixtures_equal_datasets(spark: Any, tmp_path: Path) -> None:
    cases = [("xnli_en", "validation"), ("xnli_en", "test"), ("xnli_fr", "test"),
             ("rte_en", None), ("xquad_es", None), ("xnli_fr_parquet", "validation")]  # fmt: skip
    for folder, split in cases:
        layout = resolve_hf(str(SAMPLES / folder), split)
        if layout.kind == "arrow":
            loaded = datasets.load_from_disk(str(SAMPLES / folder))
            loaded = loaded[split] if split else loaded
        else:
            files = {layout.split: list(layout.files)}
            loaded = datasets.load_dataset(
                "parquet", data_files=files, cache_dir=str(tmp_path / "cache")
            )[layout.split]
        _, rows = read_rows(spark, source_for(tmp_path, SAMPLES / folder, split))
        assert rows and data_of(rows, loaded.features) == canonical(loaded.to_list()), folder
    _, rows = read_rows(spark, source_for(tmp_path, SAMPLES / "xnli_fr_parquet", "test"))
    _, saved = read_rows(spark, source_for(tmp_path, SAMPLES / "xnli_fr", "test"))
    assert data_of(rows, datasets.load_from_disk(str(SAMPLES / "xnli_fr"))["test"].features) == (
        data_of(saved, datasets.load_from_disk(str(SAMPLES / "xnli_fr"))["test"].features)
    )
