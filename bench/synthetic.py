"""Deterministic synthetic multilingual records for benchmarks, at any size.

    .venv/bin/python bench/synthetic.py --records 1000000 --out out/synthetic-1m [--seed N]
        [--languages 10] [--zipf 1.1] [--mean-chars 860] [--dup-rate 0.05]
        [--templates-per-record 1] [--files 8]
    .venv/bin/instructmill build --conf out/synthetic-1m/pipeline.yaml --output OUT

Each record is ``{"id", "lang", "title", "text"}``: ``text`` is real sentences of one language
from ../shared/data/ud, drawn with ``random.Random(seed)`` until it is about ``mean_chars``
UTF-8 bytes long (log-normal lengths), with one token in four (characters for Chinese and
Japanese) replaced by a random token of the same language so that texts do not share
shingles by chance (see ``substitute``); fastText still identifies the language. ``title``
is the first words of the text. Record counts over the languages follow a Zipf law
(rank k gets weight 1/k**zipf). A ``dup_rate`` fraction of records are near-duplicates: a copy
of an earlier record (drawn uniformly from all earlier ones through a reservoir sample) with a
few tokens edited, so MinHash has work. The task is title generation (cluster
``summarization``), rendered by plain Jinja templates written next to the data.

Only the standard library is used, so a peer benchmark in any Python can import ``texts``.
Records stream to the shards: memory stays flat at any size.
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import random
import shutil
import sys
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from functools import cache
from itertools import accumulate, chain
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from operator import add
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
UD = ROOT.parent / "shared" / "data" / "ud"

# Zipf rank order. The first ten cover seven scripts: Latin (en es fr de), Han (zh),
# Cyrillic (ru), Japanese (ja), Arabic (ar), Devanagari (hi), Greek (el). Further ranks, for
# --languages > 10, are other UD languages that lid.176 knows.
LANGUAGES = (
    "en", "zh", "es", "ru", "fr", "de", "ja", "ar", "hi", "el",
    "pt", "ko", "tr", "vi", "id", "fa", "he", "th", "uk", "fi", "ka", "hy", "ta",
)  # fmt: skip
# Written without spaces between words: sentences join with nothing and edits work on
# characters (udfs/shingles.py shingles these by characters too).
NO_SPACES = frozenset({"zh", "ja", "th"})
TITLE_WORDS = 8
TITLE_CHARS = 16
LENGTH_SIGMA = 0.5  # log-normal spread of text lengths: most texts 0.4x to 2.5x the mean
RESERVOIR = 10_000  # earlier records a near-duplicate may copy (a uniform sample of them all)
# Gaps between substituted tokens: at most 5 (the shingle size), one in four tokens on average.
SUBSTITUTE_GAP = (3, 5)
PATTERNS = 256
STREAM = 1 << 16  # random tokens per language a record's substitutions are read from
MAX_TARGET = 6  # x mean_chars: caps the log-normal tail (1 text in 15,000 reaches it)
TOKENS_PER_EDIT = 40  # a near-duplicate gets 1 .. tokens/40 edits: Jaccard stays above ~0.75
WRITE_CHUNK = 2_000  # lines buffered per shard before one write

TEMPLATES = (
    ("suggest_title", "Suggest a title for the following text.\n\n{{ text }} ||| {{ title }}"),
    ("headline", "{{ text }}\n\nWhat would be a good headline for this passage? ||| {{ title }}"),
    ("text_title", "Text: {{ text }}\n\nTitle: ||| {{ title }}"),
    ("name_article", "Give this article a name.\n\n{{ text }} ||| {{ title }}"),
)  # fmt: skip


@dataclass(frozen=True)
class Settings:
    """Everything that decides the records: equal settings give byte-identical shards."""

    records: int
    seed: int = 20261202
    languages: int = 10
    zipf: float = 1.1
    mean_chars: int = 860  # mean UTF-8 bytes of `text`
    dup_rate: float = 0.05
    templates_per_record: int = 1
    files: int = 8

    def __post_init__(self) -> None:
        if not 1 <= self.languages <= len(LANGUAGES):
            raise ValueError(f"languages must be 1..{len(LANGUAGES)}, not {self.languages}")
        if self.records < 0 or self.files < 1 or self.templates_per_record < 1:
            raise ValueError("records >= 0, files >= 1 and templates_per_record >= 1")
        if not 0 <= self.dup_rate < 1 or self.mean_chars < 1:
            raise ValueError("dup_rate in [0, 1) and mean_chars >= 1")


@dataclass(frozen=True)
class Corpus:
    """One language's sentences as tokens (words, or characters for scripts without spaces),
    their UTF-8 sizes and the pool of all their tokens: computed once, not per record."""

    code: str
    sentences: tuple[tuple[str, ...], ...]
    sizes: tuple[int, ...]
    pool: tuple[str, ...]  # every token of every sentence: a draw is frequency-weighted
    separator: str

    def tokens(self, text: str) -> list[str]:
        return text.split(" ") if self.separator else list(text)


@cache
def corpus(code: str) -> Corpus:
    file = UD / f"{code}.jsonl"
    if not file.exists():
        raise FileNotFoundError(f"{file}: the UD sentences of {code!r} are missing")
    separator = "" if code in NO_SPACES else " "
    sentences = []
    with file.open(encoding="utf-8") as handle:
        for line in handle:
            # Newlines inside a sentence would make the text look unlike fastText's training
            # data; collapse every whitespace run to one space.
            text = " ".join(json.loads(line)["text"].split())
            if text:
                sentences.append(tuple(text.split(" ") if separator else text))
    sizes = tuple(len(separator.join(s).encode("utf-8")) + len(separator) for s in sentences)
    pool = tuple(token for sentence in sentences for token in sentence)
    return Corpus(code, tuple(sentences), sizes, pool, separator)


def language_weights(settings: Settings) -> list[float]:
    """Cumulative Zipf weights over the first `languages` ranks."""
    weights = [1 / (rank**settings.zipf) for rank in range(1, settings.languages + 1)]
    total = sum(weights)
    cumulative, running = [], 0.0
    for weight in weights:
        running += weight / total
        cumulative.append(running)
    return cumulative


@dataclass(frozen=True)
class Streams:
    """One language's randomness, drawn once per run and read by each record from a random
    offset: drawing every sentence, gap and token of every record one `random()` at a time was
    most of the generator's time. Records that start close together share little: each one
    also draws its own length, gap pattern and token offset."""

    sentences: tuple[tuple[str, ...], ...]  # random sentences, in a random order
    # Doubled UTF-8 offsets (integers, no rounding) of each sentence's start and middle.
    starts: list[int]
    midpoints: list[int]
    tokens: tuple[str, ...]  # random tokens of the language (frequency-weighted)

    @classmethod
    def draw(cls, rng: random.Random, lang: Corpus, margin: int) -> Streams:
        picks = rng.choices(range(len(lang.sentences)), k=STREAM + margin)
        sizes = list(map(lang.sizes.__getitem__, picks))
        starts = [2 * offset for offset in accumulate(sizes, initial=0)]
        midpoints = list(map(add, starts, sizes))
        tokens = tuple(rng.choices(lang.pool, k=STREAM + margin))
        return cls(tuple(lang.sentences[i] for i in picks), starts, midpoints, tokens)


def substitution_patterns(rng: random.Random, longest: int) -> list[tuple[int, ...]]:
    """Sorted positions 3 to 5 apart covering `longest` tokens."""
    low, high = SUBSTITUTE_GAP
    patterns = []
    for _ in range(PATTERNS):
        positions = [int(rng.random() * high)]
        while positions[-1] < longest:
            positions.append(positions[-1] + low + int(rng.random() * (high - low + 1)))
        patterns.append(tuple(positions))
    return patterns


def fresh_tokens(rng: random.Random, streams: Streams, mean: int) -> list[str]:
    """Random whole sentences until the text reaches a log-normal target size."""
    # mu is set so the log-normal's mean is `mean`; a sentence goes in when its middle is
    # within the target, so texts overshoot and undershoot equally and the mean holds.
    mu = math.log(mean) - LENGTH_SIGMA**2 / 2
    target = min(rng.lognormvariate(mu, LENGTH_SIGMA), MAX_TARGET * mean)
    start = int(rng.random() * STREAM)
    limit = streams.starts[start] + 2 * target
    end = bisect.bisect_right(streams.midpoints, limit, lo=start + 1)
    return list(chain.from_iterable(streams.sentences[start:end]))


def substitute(
    rng: random.Random, tokens: list[str], streams: Streams, patterns: list[tuple[int, ...]]
) -> None:
    """Replace every 3rd to 5th token by a random token of the language, in place.

    A language has only ~400 UD sentences: verbatim, two texts that drew the same few
    sentences would be accidental near-duplicates, and their number grows with the square of
    the record count, so the dedup stage would be benchmarked on an artefact. With a
    replacement at most 5 tokens apart, every 5-token shingle holds a random draw and texts
    share almost no shingles by chance, while words stay the language's own for fastText.
    """
    positions = patterns[int(rng.random() * len(patterns))]
    count = bisect.bisect_left(positions, len(tokens))
    start = int(rng.random() * STREAM)
    # map over setitem: the per-token loop runs in C.
    deque(map(tokens.__setitem__, positions[:count], streams.tokens[start : start + count]), 0)


def title_of(tokens: list[str], lang: Corpus) -> str:
    if not lang.separator:
        return "".join(tokens[:TITLE_CHARS])
    return " ".join(tokens[:TITLE_WORDS]).rstrip(".,;:!?")


def near_copy(rng: random.Random, text: str, lang: Corpus) -> str:
    """A few substitutions, deletions or insertions of tokens (characters for scripts without
    spaces), with tokens of the same language."""
    tokens = lang.tokens(text)
    edits = 1 + int(rng.random() * max(1, len(tokens) // TOKENS_PER_EDIT))
    for _ in range(edits):
        new = lang.pool[int(rng.random() * len(lang.pool))]
        where = int(rng.random() * len(tokens))
        roll = rng.random()
        if roll < 0.5:
            tokens[where] = new
        elif roll < 0.75 and len(tokens) > 1:
            del tokens[where]
        else:
            tokens.insert(where, new)
    return lang.separator.join(tokens)


def _records(settings: Settings) -> Iterator[tuple[dict[str, str], bool]]:
    """(record, whether it is a planted near-duplicate), in id order."""
    rng = random.Random(settings.seed)
    cumulative = language_weights(settings)
    corpora = [corpus(code) for code in LANGUAGES[: settings.languages]]
    # A text never has more tokens than bytes: the target cap plus one sentence bounds it.
    longest = MAX_TARGET * settings.mean_chars + max(max(c.sizes) for c in corpora)
    patterns = substitution_patterns(rng, longest)
    streams = {c.code: Streams.draw(rng, c, longest) for c in corpora}
    reservoir: list[tuple[Corpus, str, str]] = []
    for i in range(settings.records):
        planted = bool(reservoir) and rng.random() < settings.dup_rate
        if planted:
            lang, title, original = reservoir[int(rng.random() * len(reservoir))]
            text = near_copy(rng, original, lang)
        else:
            lang = corpora[_rank(cumulative, rng.random())]
            tokens = fresh_tokens(rng, streams[lang.code], settings.mean_chars)
            substitute(rng, tokens, streams[lang.code], patterns)
            title, text = title_of(tokens, lang), lang.separator.join(tokens)
        # Algorithm R: the reservoir stays a uniform sample of every record so far, so a
        # duplicate's original is anywhere earlier in the data (and in any shard).
        if len(reservoir) < RESERVOIR:
            reservoir.append((lang, title, text))
        else:
            slot = int(rng.random() * (i + 1))
            if slot < RESERVOIR:
                reservoir[slot] = (lang, title, text)
        yield {"id": f"syn-{i:09d}", "lang": lang.code, "title": title, "text": text}, planted


def _rank(cumulative: list[float], value: float) -> int:
    # Linear: with 10-23 languages and the Zipf mass at the front this beats bisect's call.
    for index, bound in enumerate(cumulative):
        if value < bound:
            return index
    return len(cumulative) - 1


def texts(settings: Settings) -> Iterator[dict[str, str]]:
    """The records `generate` writes for these settings, in id order, as dicts
    {id, lang, title, text} (`templates_per_record` and `files` do not change them)."""
    return (record for record, _planted in _records(settings))


def _json_line(record: dict[str, str]) -> str:
    """json.dumps(record, ensure_ascii=False) for our four string fields, at half its cost:
    ids and codes need no escaping, and the C string encoder does the rest."""
    title, text = encode_basestring(record["title"]), encode_basestring(record["text"])
    return (
        f'{{"id": "{record["id"]}", "lang": "{record["lang"]}", "title": {title}, "text": {text}}}'
    )


def _write_shards(settings: Settings, data: Path) -> dict[str, Any]:
    """Records to data/part-NNNNN.jsonl round-robin, so every shard holds every language and
    a duplicate and its original usually sit in different files."""
    if data.exists():
        shutil.rmtree(data)  # stale shards of a larger earlier run would be read too
    data.mkdir(parents=True)
    handles: list[IO[str]] = [
        (data / f"part-{n:05d}.jsonl").open("w", encoding="utf-8") for n in range(settings.files)
    ]
    buffers: list[list[str]] = [[] for _ in handles]
    per_language: dict[str, int] = {}
    text_bytes = near_duplicates = 0
    try:
        for i, (record, planted) in enumerate(_records(settings)):
            shard = i % settings.files
            buffers[shard].append(_json_line(record))
            if len(buffers[shard]) == WRITE_CHUNK:
                handles[shard].write("\n".join(buffers[shard]) + "\n")
                buffers[shard].clear()
            per_language[record["lang"]] = per_language.get(record["lang"], 0) + 1
            text_bytes += len(record["text"].encode("utf-8"))
            near_duplicates += planted
        for handle, buffer in zip(handles, buffers, strict=True):
            if buffer:
                handle.write("\n".join(buffer) + "\n")
    finally:
        for handle in handles:
            handle.close()
    return {
        "per_language": dict(sorted(per_language.items(), key=lambda item: -item[1])),
        "planted_near_duplicates": near_duplicates,
        "mean_text_bytes": round(text_bytes / max(settings.records, 1), 1),
        "input_bytes": sum(path.stat().st_size for path in data.glob("*.jsonl")),
    }


def _write_templates(settings: Settings, folder: Path) -> list[str]:
    """Enough title-generation templates for `templates_per_record` distinct ones a record."""
    target = folder / "templates" / "title"
    target.mkdir(parents=True, exist_ok=True)
    names = []
    for n in range(max(len(TEMPLATES), settings.templates_per_record)):
        name, jinja = TEMPLATES[n % len(TEMPLATES)]
        if n >= len(TEMPLATES):  # a variant: same task, different wording, own template id
            name, jinja = f"{name}_{n}", f"({n}) {jinja}"
        (target / f"{name}.jinja").write_text(jinja + "\n", encoding="utf-8")
        names.append(f"../templates/title/{name}.jinja")
    return names


def _write_registry(folder: Path, templates: list[str]) -> Path:
    registry = folder / "datasets" / "synthetic.yaml"
    registry.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        "name: synthetic",
        "description: Synthetic title-generation records from UD sentences (bench/synthetic.py)",
        "path: ../data/*.jsonl",
        "format: jsonl",
        "id_field: id",
        "language_field: lang",
        "task: title_generation",
        "task_cluster: summarization",
        "license: CC-BY-SA-4.0 AND CC-BY-NC-SA-4.0  # UD treebanks; see shared/data/ud",
        "fields: {lang: string, title: string, text: string}",
        "templates:",
        *(f"  - {path}" for path in templates),
    ]
    registry.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return registry


def _write_pipeline(settings: Settings, folder: Path) -> Path:
    # conf/demo.yaml's keys; dedup and language ID on at the project defaults.
    conf = folder / "pipeline.yaml"
    conf.write_text(
        "sources: [datasets/synthetic.yaml]\n"
        "output: out\n"
        "partition_by: [language, task_cluster]\n"
        "seed: 42\n"
        f"templates_per_record: {settings.templates_per_record}\n"
        "heldout_clusters: []\n"
        "langid: {enabled: true}\n"
        "dedup: {enabled: true}\n",
        encoding="utf-8",
    )
    return conf


def generate(folder: Path, settings: Settings) -> Path:
    """Write folder/data/*.jsonl, folder/templates/, folder/datasets/synthetic.yaml,
    folder/pipeline.yaml and folder/synthetic.json (settings and counts); return the
    pipeline conf's path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    stats = _write_shards(settings, folder / "data")
    _write_registry(folder, _write_templates(settings, folder))
    conf = _write_pipeline(settings, folder)
    summary = {
        "settings": asdict(settings),
        **stats,
        "seconds": round(time.perf_counter() - start, 1),
    }
    # Written last: its presence (with equal settings) says the folder is complete.
    (folder / "synthetic.json").write_text(json.dumps(summary, indent=2) + "\n")
    return conf


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=Settings.seed)
    parser.add_argument("--languages", type=int, default=Settings.languages)
    parser.add_argument("--zipf", type=float, default=Settings.zipf)
    parser.add_argument("--mean-chars", type=int, default=Settings.mean_chars)
    parser.add_argument("--dup-rate", type=float, default=Settings.dup_rate)
    parser.add_argument("--templates-per-record", type=int, default=Settings.templates_per_record)
    parser.add_argument("--files", type=int, default=Settings.files)
    args = parser.parse_args()
    settings = Settings(
        args.records, args.seed, args.languages, args.zipf, args.mean_chars, args.dup_rate,
        args.templates_per_record, args.files,
    )  # fmt: skip
    conf = generate(args.out, settings)
    print((args.out / "synthetic.json").read_text(), end="")
    print(conf)
    return 0


if __name__ == "__main__":
    sys.exit(main())
