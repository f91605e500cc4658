"""The datatrove peer of bench/peers.py; runs inside bench/.venv-datatrove, never in .venv.

    bench/.venv-datatrove/bin/python bench/peers_datatrove.py --mode tuned|defaults|dedup
        --data DIR --model models/lid.176.ftz --work DIR [--tasks 2] [--workers 2]

Reads DIR/*.jsonl ({id, text, ...}) with datatrove's JsonlReader on LocalPipelineExecutor
(``tasks`` x ``workers``, as Spark's local[2]) and prints one JSON line of counts and per-step
times. Modes:

tuned     LanguageFilter (fastText lid.176.ftz from --model, top-1 label, every label kept:
          ``label_only``, as the project's ``action: label``) -> MinhashDedupSignature with
          the project's shingles (NFKC + casefold + whitespace runs as one space, then word
          5-grams, or character 5-grams where the dominant script is written without spaces),
          32 buckets x 8 hashes = 256 permutations (the project's bands x rows at its
          defaults), 32-bit xxhash.
defaults  LanguageFilter() and MinhashDedupSignature() at datatrove's defaults (threshold 0.65,
          all 176 scores per text, drops low-confidence texts; 14 x 8 hashes, 64-bit, spaCy's
          English tokenizer, datatrove's text normalisation), with the model file swapped in.
dedup     tuned, then datatrove's whole MinHash dedup: language-labelled records written,
          signatures, buckets, clusters, and the filter writing the kept records.

The language model is never downloaded: datatrove's FT176LID is given the local file.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
import unicodedata
from pathlib import Path
from typing import Any

import regex
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup.minhash import (
    MinhashConfig,
    MinhashDedupBuckets,
    MinhashDedupCluster,
    MinhashDedupFilter,
    MinhashDedupSignature,
)
from datatrove.pipeline.filters import LanguageFilter
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter
from datatrove.utils.hashing import HashConfig
from datatrove.utils.lid import FT176LID
from datatrove.utils.text import TextNormConfig
from datatrove.utils.word_tokenizers import WordTokenizer

# The project's defaults (jobs/config/models.py DedupConfig; udfs.minhash.lsh_params(0.7, 256,
# 0.1, 0.9) == (32, 8)).
BUCKETS, HASHES_PER_BUCKET, NGRAM = 32, 8, 5
# udfs/shingles.py CHAR_NGRAM_SCRIPTS: scripts written without spaces between words.
NO_SPACE_LETTER = regex.compile(
    r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}]"
)
LETTER = regex.compile(r"\p{L}")
FIRST_NO_SPACE_CODE_POINT = "\u0e00"  # no letter of those scripts lies below Thai's block


class LocalFT176LID(FT176LID):
    """datatrove's fastText LID on a local model file instead of its download."""

    def __init__(self, model_path: str, languages: list[str] | None = None, k: int = -1) -> None:
        super().__init__(languages, k)
        self.model_path = model_path

    @property
    def model(self) -> Any:
        if self._model is None:
            from fasttext.FastText import _FastText

            self._model = _FastText(self.model_path)
        return self._model


class ProjectShingleTokenizer(WordTokenizer):
    """The project's shingle tokens (udfs/shingles.py): its normal form, then words, or
    characters (spaces included) for text whose letters are mostly of a no-space script."""

    def word_tokenize(self, text: str) -> list[str]:
        normalised = unicodedata.normalize("NFKC", text)
        folded = normalised.casefold()
        if folded != normalised and not unicodedata.is_normalized("NFKC", folded):
            folded = unicodedata.normalize("NFKC", folded)
        folded = " ".join(folded.split())
        if folded and max(folded) >= FIRST_NO_SPACE_CODE_POINT and _mostly_no_space(folded):
            return list(folded)
        return folded.split(" ") if folded else []

    def sent_tokenize(self, text: str) -> list[str]:
        return [text]

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        return [(0, len(text))]


def _mostly_no_space(text: str) -> bool:
    letters = len(LETTER.findall(text))
    return letters > 0 and 2 * len(NO_SPACE_LETTER.findall(text)) > letters


def tuned_config() -> MinhashConfig:
    # The tokenizer does the normalisation; datatrove's own would strip punctuation and
    # digits, which the project keeps.
    plain = TextNormConfig(
        lowercase=False,
        norm_whitespace=False,
        remove_punctuation=False,
        norm_unicode_diacritics=False,
        norm_numbers=False,
    )
    return MinhashConfig(
        n_grams=NGRAM,
        num_buckets=BUCKETS,
        hashes_per_bucket=HASHES_PER_BUCKET,
        seed=1,
        norm_config=plain,
        hash_config=HashConfig(precision=32, hash_fc="xxhash"),
    )


def language_filter(model: str, tuned: bool) -> LanguageFilter:
    step = LanguageFilter(label_only=True) if tuned else LanguageFilter()
    step.model = LocalFT176LID(model, None, k=1 if tuned else -1)
    return step


def signature_step(folder: Path, tuned: bool) -> MinhashDedupSignature:
    if tuned:
        return MinhashDedupSignature(
            str(folder), tuned_config(), language=ProjectShingleTokenizer()
        )
    return MinhashDedupSignature(str(folder))


def reader(data: Path) -> JsonlReader:
    return JsonlReader(str(data), glob_pattern="*.jsonl", compression=None)


def run_executor(
    name: str, pipeline: list[Any], work: Path, tasks: int, workers: int
) -> dict[str, Any]:
    """One executor run: its wall time and each step's counts and summed time over tasks."""
    executor = LocalPipelineExecutor(
        pipeline, tasks=tasks, workers=workers, logging_dir=str(work / "logs" / name)
    )
    start = time.perf_counter()
    stats = executor.run()
    seconds = time.perf_counter() - start
    steps = [
        {
            "step": stat.name,
            "task_seconds": round(stat.time_stats.total, 3),
            "counts": {key: value.total for key, value in stat.stats.items()},
        }
        for stat in stats.stats
    ]
    return {"stage": name, "seconds": round(seconds, 3), "steps": steps}


def signatures_only(args: argparse.Namespace, tuned: bool) -> list[dict[str, Any]]:
    pipeline = [
        reader(args.data),
        language_filter(args.model, tuned),
        signature_step(args.work / "signatures", tuned),
    ]
    return [run_executor("signatures", pipeline, args.work, args.tasks, args.workers)]


def whole_dedup(args: argparse.Namespace) -> list[dict[str, Any]]:
    """datatrove's four MinHash steps after the tuned language ID, as its example runs them."""
    work, config = args.work, tuned_config()
    labelled, signatures = work / "labelled", work / "signatures"
    buckets, remove, output = work / "buckets", work / "remove_ids", work / "output"
    stages = [
        (
            "signatures",
            [
                reader(args.data),
                language_filter(args.model, tuned=True),
                JsonlWriter(str(labelled), compression=None),
                signature_step(signatures, tuned=True),
            ],
            args.tasks,
        ),
        ("buckets", [MinhashDedupBuckets(str(signatures), str(buckets), config=config)], BUCKETS),
        ("cluster", [MinhashDedupCluster(str(buckets), str(remove), config=config)], 1),
        (
            "filter",
            [reader(labelled), MinhashDedupFilter(str(remove)), JsonlWriter(str(output))],
            args.tasks,
        ),
    ]
    return [
        run_executor(name, pipeline, work, tasks, min(args.workers, tasks))
        for name, pipeline, tasks in stages
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("tuned", "defaults", "dedup"), required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--tasks", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the outputs in --work")
    args = parser.parse_args()
    if args.work.exists():
        shutil.rmtree(args.work)  # a completed earlier run would be skipped
    args.work.mkdir(parents=True)
    start = time.perf_counter()
    if args.mode == "dedup":
        stages = whole_dedup(args)
    else:
        stages = signatures_only(args, tuned=args.mode == "tuned")
    result = {"mode": args.mode, "seconds": round(time.perf_counter() - start, 3)}
    result["stages"] = stages
    if not args.keep:
        shutil.rmtree(args.work)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
