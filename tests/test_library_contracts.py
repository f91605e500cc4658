"""Contracts on the private APIs of other libraries that instructmill relies on.

Each of these is underscore-prefixed or undocumented, so an upgrade may change it without a
deprecation warning, and the project's own tests would then fail far from the cause (a wrong
band count in dedup, a crash deep inside a Spark task). Each test here checks one such API
directly, with pure library calls, and fails with a message naming the API, the installed
version, the instructmill code that depends on it and what to do about it.
"""

from __future__ import annotations

import importlib.metadata
import inspect
from collections.abc import Callable, Sequence
from numbers import Integral
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pytest

from tests.conftest import ROOT

LID_MODEL = ROOT / "models" / "lid.176.ftz"

# Per language, a sentence the lid.176 model gets right with a clear margin; the non-Latin
# scripts make the UTF-8 bytes differ from Latin-1 and from the code points.
SENTENCES = [
    "The library stays open late on Thursdays during the exam period.",
    "La boulangerie du quartier ferme ses portes à midi le dimanche.",
    "Der Zug nach Hamburg hatte heute Morgen fast eine Stunde Verspätung.",
    "Вчера вечером мы долго гуляли по набережной и разговаривали.",
    "我们明天早上八点在图书馆门口见面，然后一起去吃早饭。",
    "ذهبنا إلى السوق صباح الجمعة واشترينا الكثير من الفاكهة الطازجة.",
]


def _broken(api: str, distribution: str, used_by: str, detail: str, fix: str) -> NoReturn:
    version = importlib.metadata.version(distribution)
    pytest.fail(
        f"{api} changed in {distribution} {version}: {detail}. instructmill's {used_by} "
        f"depends on it; {fix}",
        pytrace=False,
    )


# --- datasketch -----------------------------------------------------------------------------

OPTIMAL_PARAM = "datasketch.lsh._optimal_param"
OPTIMAL_PARAM_USER = "udfs/minhash.py lsh_params (the dedup stage's bands and rows)"
OPTIMAL_PARAM_FIX = (
    "make lsh_params compute (bands, rows) the way MinHashLSH(threshold, num_perm, weights) "
    "now does, or pin datasketch below this version in pyproject.toml"
)


@pytest.mark.parametrize(
    ("threshold", "num_perm", "weights"),
    [
        (0.7, 256, (0.1, 0.9)),  # instructmill's dedup defaults (jobs/config/models.py DedupConfig)
        (0.7, 256, (0.5, 0.5)),  # datasketch's default weights
        (0.5, 128, (0.5, 0.5)),
    ],
)
def test_datasketch_optimal_param(
    threshold: float, num_perm: int, weights: tuple[float, float]
) -> None:
    def broken(detail: str) -> NoReturn:
        _broken(OPTIMAL_PARAM, "datasketch", OPTIMAL_PARAM_USER, detail, OPTIMAL_PARAM_FIX)

    try:
        from datasketch.lsh import _optimal_param
    except ImportError as error:
        broken(f"it can no longer be imported ({error})")
    if not callable(_optimal_param):
        broken(f"it is a {type(_optimal_param).__name__}, not a function")
    args = (threshold, num_perm, *weights)
    try:
        inspect.signature(_optimal_param).bind(*args)
    except (TypeError, ValueError) as error:
        broken(
            "it no longer takes (threshold, num_perm, false_positive_weight, "
            f"false_negative_weight) positionally ({error})"
        )
    result = _optimal_param(*args)
    if not (
        isinstance(result, Sequence)
        and len(result) == 2
        and all(isinstance(x, Integral) and not isinstance(x, bool) for x in result)
    ):
        broken(f"it returned {result!r}, not a (bands, rows) pair of ints")
    bands, rows = int(result[0]), int(result[1])
    if not 1 <= bands * rows <= num_perm:
        broken(f"(bands, rows) = ({bands}, {rows}) does not fit {num_perm} permutations")
    from datasketch import MinHashLSH

    try:
        lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=weights)
    except Exception as error:
        broken(f"MinHashLSH(threshold, num_perm, weights) raised {type(error).__name__}: {error}")
    if (lsh.b, lsh.r) != (bands, rows):
        broken(
            f"for threshold {threshold}, {num_perm} permutations and weights {weights} it "
            f"gives (bands, rows) = ({bands}, {rows}) but MinHashLSH(...) uses "
            f"(b, r) = ({lsh.b}, {lsh.r})"
        )


# --- fastText -------------------------------------------------------------------------------

MULTILINE = "fastText's model.f.multilinePredict(lines, k, threshold, on_unicode_error)"
MULTILINE_USER = "udfs/langid.py LanguageIdentifier.predict (one native call per batch)"
MULTILINE_FIX = (
    "call the binding's new batch predict from udfs/langid.py (bytes lines ending in a "
    "newline, k=1), or pin fasttext-numpy2 in pyproject.toml"
)


@pytest.fixture(scope="module")
def lid_model() -> Any:
    if not LID_MODEL.is_file():
        pytest.skip(f"{LID_MODEL} is missing (`make models` puts it there)")
    import fasttext

    # As udfs/langid.py does: some bindings print a warning about model types on every load.
    fasttext.FastText.eprint = lambda *_args, **_kwargs: None
    return fasttext.load_model(str(LID_MODEL))


def _predictions(
    result: Any, lines: int, broken: Callable[[str], NoReturn]
) -> tuple[list[Any], np.ndarray]:
    """multilinePredict's (labels, probabilities) for ``lines`` lines at k=1, checked."""
    if not (isinstance(result, Sequence) and len(result) == 2):
        broken(f"it returned {type(result).__name__}, not a (labels, probabilities) pair")
    labels, probabilities = result
    if len(labels) != lines or len(probabilities) != lines:
        broken(
            f"for {lines} lines it returned {len(labels)} label lists and "
            f"{len(probabilities)} probability lists, not one of each per line"
        )
    if not all(len(found) == 1 and str(found[0]).startswith("__label__") for found in labels):
        broken(f"with k=1 the labels are {labels!r}, not one `__label__xx` per line")
    scores = np.concatenate([np.asarray(found, dtype=np.float64) for found in probabilities])
    if scores.shape != (lines,) or not np.all((scores > 0) & (scores <= 1 + 1e-6)):
        broken(f"with k=1 the probabilities are {probabilities!r}, not one in (0, 1] per line")
    return list(labels), scores


@pytest.mark.parametrize("as_bytes", [True, False], ids=["utf8_bytes", "str"])
def test_fasttext_multiline_predict(lid_model: Any, as_bytes: bool) -> None:
    def broken(detail: str) -> NoReturn:
        _broken(MULTILINE, "fasttext-numpy2", MULTILINE_USER, detail, MULTILINE_FIX)

    native = getattr(lid_model, "f", None)
    if native is None:
        broken(f"the {type(lid_model).__name__} from fasttext.load_model has no `.f` attribute")
    multiline_predict = getattr(native, "multilinePredict", None)
    if not callable(multiline_predict):
        broken(f"the native model ({type(native).__name__}) has no multilinePredict method")

    lines: list[Any] = [text + "\n" for text in SENTENCES]
    if as_bytes:  # what the project passes
        lines = [line.encode("utf-8") for line in lines]
    try:
        result = multiline_predict(lines, 1, 0.0, "strict")
    except Exception as error:
        kind = "UTF-8 bytes" if as_bytes else "str"
        broken(
            f"multilinePredict(<{len(lines)} {kind} lines ending in a newline>, 1, 0.0, "
            f"'strict') raised {type(error).__name__}: {error}"
        )
    labels, scores = _predictions(result, len(lines), broken)

    # The public single-line predict goes through another native call (`f.predict`).
    for text, found, score in zip(SENTENCES, labels, scores, strict=True):
        public_labels, public_scores = lid_model.predict(text, k=1)
        if found[0] != public_labels[0] or abs(score - public_scores[0]) > 1e-5:
            broken(
                f"for {text!r} it answers {found[0]} {score:.6f} but the public "
                f"model.predict answers {public_labels[0]} {public_scores[0]:.6f}"
            )


# --- PySpark --------------------------------------------------------------------------------

JVM_GATEWAY = "pyspark SparkContext._jvm / SparkContext._jsc"
JVM_USER = "jobs/io/hadoop_fs.py (manifest writing, partition cleanup through Hadoop FileSystem)"
JVM_FIX = (
    "find the new way to reach the JVM and the Hadoop configuration from Python and update "
    "jobs/io/hadoop_fs.py._fs, or pin pyspark in pyproject.toml"
)


@pytest.mark.spark
def test_spark_context_jvm_and_jsc_reach_hadoop_filesystem(spark: Any, tmp_path: Path) -> None:
    def broken(detail: str) -> NoReturn:
        _broken(JVM_GATEWAY, "pyspark", JVM_USER, detail, JVM_FIX)

    context = spark.sparkContext
    jvm = getattr(context, "_jvm", None)
    if jvm is None:
        broken("SparkContext._jvm is missing or None on a running local session")
    jsc = getattr(context, "_jsc", None)
    if jsc is None:
        broken("SparkContext._jsc is missing or None on a running local session")

    # A folder whose URI needs percent-encoding, like a `language=a b` partition.
    folder = tmp_path / "language=a b"
    payload = "manifest ✓ Ünïcode\n".encode()
    step = "jvm.org.apache.hadoop.fs.Path(str)"
    try:
        folder_path = jvm.org.apache.hadoop.fs.Path(str(folder))
        step = "jvm.java.net.URI(uri) and Path(URI)"
        file_path = jvm.org.apache.hadoop.fs.Path(jvm.java.net.URI((folder / "x.bin").as_uri()))
        step = "Path.getFileSystem(sc._jsc.hadoopConfiguration())"
        fs = file_path.getFileSystem(jsc.hadoopConfiguration())
        step = "fs.create(path, True) and stream.write(bytearray)"
        stream = fs.create(file_path, True)
        try:
            stream.write(bytearray(payload))
        finally:
            stream.close()
        step = "reading the written file from local disk"
        on_disk = (folder / "x.bin").read_bytes()
        step = "fs.exists(path)"
        file_exists, folder_exists = bool(fs.exists(file_path)), bool(fs.exists(folder_path))
        step = "fs.open(path) and jvm.org.apache.commons.io.IOUtils.toByteArray(stream)"
        stream = fs.open(file_path)
        try:
            read_back = bytes(jvm.org.apache.commons.io.IOUtils.toByteArray(stream))
        finally:
            stream.close()
        step = "fs.makeQualified(path).toString() and path.getParent()"
        qualified_file = fs.makeQualified(file_path.getParent()).toString().rstrip("/")
        qualified_folder = fs.makeQualified(folder_path).toString().rstrip("/")
        step = "fs.listStatus(path)"
        listed = [status.getPath().getName() for status in fs.listStatus(folder_path)]
        step = "fs.delete(path, True) and fs.delete(empty_folder, False)"
        deleted_file = bool(fs.delete(file_path, True))
        empty_after_delete = len(fs.listStatus(folder_path)) == 0
        deleted_folder = bool(fs.delete(folder_path, False))
        gone = not fs.exists(file_path) and not fs.exists(folder_path)
    except Exception as error:
        broken(f"{step} failed with {type(error).__name__}: {error}")

    checks = {
        "fs.exists is true for the written file and its folder": file_exists and folder_exists,
        "the file's bytes read back with IOUtils.toByteArray": read_back == payload,
        "the bytes written through fs.create are the file on local disk": on_disk == payload,
        "makeQualified of the URI path's parent equals that of the str path": (
            qualified_file == qualified_folder and qualified_folder.startswith("file:")
        ),
        "fs.listStatus lists the written file": listed == ["x.bin"],
        "fs.delete removes the file and then the empty folder": (
            deleted_file and empty_after_delete and deleted_folder and gone
        ),
    }
    failed = [check for check, ok in checks.items() if not ok]
    if failed:
        broken(
            f"not true any more: {'; '.join(failed)} (read back {read_back!r}, listed "
            f"{listed!r}, qualified {qualified_file!r} vs {qualified_folder!r})"
        )


FIND_SPARK_HOME = "pyspark.find_spark_home._find_spark_home()"
FIND_SPARK_HOME_USER = (
    "jobs/dev/local_cluster.py (the standalone cluster for `make cluster-demo` and cluster tests)"
)
FIND_SPARK_HOME_FIX = (
    "locate Spark's bin/ scripts another way in jobs/dev/local_cluster.py (SPARK_HOME, or the "
    "pyspark package folder), or pin pyspark in pyproject.toml"
)


def test_pyspark_find_spark_home() -> None:
    def broken(detail: str) -> NoReturn:
        _broken(FIND_SPARK_HOME, "pyspark", FIND_SPARK_HOME_USER, detail, FIND_SPARK_HOME_FIX)

    try:
        from pyspark.find_spark_home import _find_spark_home
    except ImportError as error:
        broken(f"it can no longer be imported ({error})")
    try:
        home = _find_spark_home()
    except (Exception, SystemExit) as error:  # it calls sys.exit when it finds nothing
        broken(f"calling it raised {type(error).__name__}: {error}")
    if not isinstance(home, (str, Path)) or not Path(home).is_dir():
        broken(f"it returned {home!r}, not an existing folder")
    missing = [
        script
        for script in ("bin/spark-class", "bin/spark-submit")
        if not (Path(home) / script).is_file()
    ]
    if missing:
        broken(f"the folder it returned, {home}, has no {' and no '.join(missing)}")
