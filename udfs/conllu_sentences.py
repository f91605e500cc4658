"""CoNLL-U files -> one record per sentence: the body of ``format: conllu``'s ``mapInArrow``.

A sentence record follows UD's definition of the format
(https://universaldependencies.org/format.html):

- the words are the *syntactic* words, ids 1, 2, ...: a multiword token line (``1-2
  vámonos``) is not a word, its words follow it; it is kept as ``"1-2 vámonos"`` in
  ``multiword_tokens``. An empty node (``8.1``) is not in the basic tree and is skipped;
- ``tokens`` (FORM), ``lemmas``, ``upos``, ``xpos``, ``feats`` (the FEATS string) and
  ``deprels`` are lists of equal length holding each column as the file writes it, ``_``
  included: in FORM and LEMMA ``_`` can be the word ``_`` itself, so it cannot stand for null,
  and one rule for every column is easier to template against (``{% if lemma != '_' %}``);
- ``heads`` are ints, 0 for the root;
- ``sent_id`` is ``# sent_id = ...``, else ``<file stem>#<n>`` with n counting the file's
  sentences from 1, rejected ones included, so fixing one sentence renumbers no other;
  ``text`` is ``# text = ...`` (null when absent);
- every other ``# key = value`` comment is an entry of the ``comments`` map (keys lowercased,
  each run of non-word characters made ``_``; a key equal to a column name gets a
  ``comment_`` prefix). Arrow and Spark schemas are fixed while comment keys differ from
  file to file, so they share one column: a template writes ``comments['text_en']`` (which
  needs the renderer to turn Arrow maps into dicts, ``to_pylist(maps_as_pydicts="strict")``;
  plain ``to_pylist()`` gives a list of pairs). A comment without `` = `` (``# newpar``) is
  not kept;
- ``line`` is the 1-based line of the file where the sentence starts.

A sentence that breaks the format (a line without tabs, a column count other than 10, an
empty column, an ID that is not a word, range or empty node, ids out of sequence, a bad
multiword range, a HEAD that is not an integer, ``_`` included, or points outside the
sentence) is one reject row holding the sentence's lines and a detail naming the file line
(``line 57: expected 10 tab-separated columns, found 7``); the rest of the file is read.
A block of comment lines alone (comments between sentences) belongs to the sentence after
it; one at the end of the file is dropped, since it holds no sentence. IDs and HEADs are
checked with the ``conllu`` library's own field parsers; the splitting into sentences and
lines is done here so line numbers are known.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
from conllu.exceptions import ParseException
from conllu.parser import parse_id_value, parse_int_value

from udfs.render_batches import CORRUPT_COLUMN, CORRUPT_DETAIL, CORRUPT_REASON, FILE_COLUMN

MALFORMED_SENTENCE = "malformed_sentence"
_LIST = pa.list_(pa.string())
SENTENCE_SCHEMA = pa.schema(
    [
        pa.field("sent_id", pa.string()),
        pa.field("text", pa.string()),
        pa.field("tokens", _LIST),
        pa.field("lemmas", _LIST),
        pa.field("upos", _LIST),
        pa.field("xpos", _LIST),
        pa.field("feats", _LIST),
        pa.field("heads", pa.list_(pa.int32())),
        pa.field("deprels", _LIST),
        pa.field("multiword_tokens", _LIST),
        pa.field("comments", pa.map_(pa.string(), pa.string())),
        pa.field("line", pa.int32()),
        pa.field(CORRUPT_COLUMN, pa.string()),
        pa.field(CORRUPT_REASON, pa.string()),
        pa.field(CORRUPT_DETAIL, pa.string()),
        pa.field(FILE_COLUMN, pa.string()),
    ]
)
MAX_BATCH_ROWS = 10_000
# Also bound a batch by the sentences' characters: a treebank of very long sentences
# (legal text, unsegmented speech) would otherwise make one batch of hundreds of megabytes.
MAX_BATCH_CHARS = 16_000_000

_COLUMNS = ("ID", "FORM", "LEMMA", "UPOS", "XPOS", "FEATS", "HEAD", "DEPREL", "DEPS", "MISC")
# (record field, CoNLL-U column index) of the word columns kept as they are written.
_WORD_FIELDS = (
    ("tokens", 1),
    ("lemmas", 2),
    ("upos", 3),
    ("xpos", 4),
    ("feats", 5),
    ("deprels", 7),
)
_RESERVED_KEYS = frozenset(SENTENCE_SCHEMA.names)
_NON_WORD = re.compile(r"\W+")
_COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz", ".zst", ".lz4", ".snappy", ".deflate")

Block = list[tuple[int, str]]  # (1-based line number, line without its line ending)


class _Malformed(Exception):
    def __init__(self, number: int, reason: str) -> None:
        super().__init__(f"line {number}: {reason}")


def file_stem(path: str) -> str:
    """``file:///data/es_gsd-ud-dev.conllu.gz`` -> ``es_gsd-ud-dev``."""
    name = unquote(path.rstrip("/").rsplit("/", 1)[-1])
    for suffix in _COMPRESSION_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    stem, dot, _ = name.rpartition(".")
    return stem if dot and stem else name


def comment_key(key: str) -> str:
    """A comment's key as an identifier: ``Text EN`` -> ``text_en``; ``tokens`` (a column
    name) -> ``comment_tokens``; empty when nothing word-like is left."""
    normal = _NON_WORD.sub("_", key.strip().lower()).strip("_")
    return f"comment_{normal}" if normal in _RESERVED_KEYS else normal


def _lines(text: str) -> Iterator[str]:
    """The lines of ``text`` one at a time, not a list of them all: a treebank file is
    hundreds of megabytes. Only LF ends a line (CoNLL-U's rule; ``str.splitlines`` would also
    split on U+2028 or U+0085, which a FORM may hold)."""
    start = 0
    while True:
        end = text.find("\n", start)
        if end < 0:
            yield text[start:]
            return
        yield text[start:end]
        start = end + 1


def _blocks(text: str) -> Iterator[Block]:
    """The file's blocks of non-blank lines, without a BOM, the CR of a CRLF, or trailing
    whitespace."""
    if text.startswith("\ufeff"):
        text = text[1:]
    block: Block = []
    for number, raw in enumerate(_lines(text), start=1):
        line = raw.rstrip()
        if line:
            block.append((number, line))
        elif block:
            yield block
            block = []
    if block:
        yield block


class _Comments:
    def __init__(self) -> None:
        self.sent_id: str | None = None
        self.text: str | None = None
        self.others: dict[str, str] = {}

    def add(self, line: str) -> None:
        key, separator, value = line[1:].partition(" = ")
        if not separator:
            return
        key, value = key.strip(), value.strip()
        if key == "sent_id":
            self.sent_id = value or None
        elif key == "text":
            self.text = value or None
        elif normal := comment_key(key):
            self.others[normal] = value


class _Sentence:
    """The word lines of one sentence, checked as they are added."""

    def __init__(self) -> None:
        self.words: dict[str, list[str]] = {field: [] for field, _ in _WORD_FIELDS}
        self.heads: list[int | None] = []
        self.head_lines: list[int] = []
        self.multiword: list[str] = []
        self.range_end = 0
        self.range_line = 0

    @property
    def size(self) -> int:
        return len(self.heads)

    def add(self, number: int, line: str) -> None:
        if "\t" not in line:
            raise _Malformed(number, "no tab: a word line has 10 tab-separated columns")
        columns = line.split("\t")
        if len(columns) != len(_COLUMNS):
            raise _Malformed(number, f"expected 10 tab-separated columns, found {len(columns)}")
        empty = [name for name, value in zip(_COLUMNS, columns, strict=True) if not value.strip()]
        if empty:
            raise _Malformed(number, f"column {empty[0]} is empty (write '_' for no value)")
        token_id = _token_id(number, columns[0])
        if isinstance(token_id, int):
            self._add_word(number, token_id, columns)
        elif token_id[1] == "-":
            self._add_range(number, token_id[0], token_id[2], columns[1])
        elif token_id[0] != self.size:
            raise _Malformed(
                number,
                f"empty node {columns[0]} out of sequence: after word {self.size} only "
                f"{self.size}.1, {self.size}.2 ... may follow",
            )

    def _add_word(self, number: int, word_id: int, columns: list[str]) -> None:
        if word_id != self.size + 1:
            raise _Malformed(number, f"word ID {word_id} out of sequence: expected {self.size + 1}")
        head: int | None = None
        if columns[6] != "_":  # "_": no tree (a tagger's output); only tree templates need it
            try:
                head = parse_int_value(columns[6])
            except ParseException:
                head = None
            if head is None:
                raise _Malformed(number, f"HEAD {columns[6]!r} is not an integer or '_'")
        for field, index in _WORD_FIELDS:
            self.words[field].append(columns[index])
        self.heads.append(head)
        self.head_lines.append(number)

    def _add_range(self, number: int, start: int, end: int, form: str) -> None:
        span = f"{start}-{end}"
        if start >= end:
            raise _Malformed(number, f"multiword token {span} must span two words or more")
        if self.range_end > self.size:
            raise _Malformed(number, f"multiword token {span} overlaps the one before it")
        if start != self.size + 1:
            raise _Malformed(
                number, f"multiword token {span} must start at the next word, {self.size + 1}"
            )
        self.range_end, self.range_line = end, number
        self.multiword.append(f"{span} {form}")

    def finish(self, start_line: int) -> dict[str, Any]:
        if not self.heads:
            raise _Malformed(start_line, "the sentence has no word lines")
        if self.range_end > self.size:
            raise _Malformed(
                self.range_line,
                f"the last multiword token ends at word {self.range_end}, "
                f"but the sentence has {self.size} words",
            )
        for head, number in zip(self.heads, self.head_lines, strict=True):
            if head is not None and not 0 <= head <= self.size:
                raise _Malformed(
                    number, f"HEAD {head} is out of range: the sentence has {self.size} words"
                )
        return {**self.words, "heads": self.heads, "multiword_tokens": self.multiword}


def _token_id(number: int, value: str) -> int | tuple[int, str, int]:
    try:
        token_id = parse_id_value(value)
    except ParseException:
        token_id = None
    if token_id is None:
        raise _Malformed(
            number,
            f"ID {value!r} is not a word number (1), a multiword token range (1-2) "
            "or an empty node (1.1)",
        )
    return token_id


def _undecodable(block: Block) -> dict[str, Any] | None:
    """The reject of a block holding bytes that are not UTF-8 (decoded as lone surrogates),
    with the bytes shown as escapes; None for a block that decodes."""
    for number, line in block:
        bad = next((i for i, char in enumerate(line) if "\udc80" <= char <= "\udcff"), None)
        if bad is not None:
            shown = "\n".join(
                text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
                for _, text in block
            )
            return {
                CORRUPT_COLUMN: shown,
                CORRUPT_REASON: "invalid_utf8",
                CORRUPT_DETAIL: f"line {number}: character {bad + 1} is not valid UTF-8",
            }
    return None


def _sentence(block: Block, carried: Block, default_id: str) -> dict[str, Any]:
    """One block (and the comment-only blocks just before it) -> a record or a reject."""
    start = block[0][0]
    undecodable = _undecodable([*carried, *block])
    if undecodable is not None:
        return {"sent_id": default_id, "line": start, **undecodable}
    comments = _Comments()
    for _, line in (*carried, *block):
        if line.startswith("#"):
            comments.add(line)
    identity = {"sent_id": comments.sent_id or default_id, "line": start}
    sentence = _Sentence()
    try:
        for number, line in block:
            if not line.startswith("#"):
                sentence.add(number, line)
        words = sentence.finish(start)
    except _Malformed as exc:
        return {
            **identity,
            CORRUPT_COLUMN: "\n".join(line for _, line in block),
            CORRUPT_REASON: MALFORMED_SENTENCE,
            CORRUPT_DETAIL: str(exc),
        }
    return {**identity, "text": comments.text, **words, "comments": comments.others}


def _sized_sentences(text: str, path: str) -> Iterator[tuple[dict[str, Any], int]]:
    stem = file_stem(path)
    carried: Block = []
    count = 0
    for block in _blocks(text):
        if all(line.startswith("#") for _, line in block):
            carried.extend(block)
            continue
        count += 1
        record = _sentence(block, carried, f"{stem}#{count}")
        carried = []
        yield record, sum(len(line) for _, line in block)


def parse_conllu(text: str, path: str = "") -> Iterator[dict[str, Any]]:
    """The sentences of one file's text, in file order: records, and rejects carrying
    ``_im_corrupt`` (the sentence's lines), ``_im_corrupt_reason`` and ``_im_corrupt_detail``.
    ``path`` names the file (its stem makes the ``sent_id`` of sentences without one)."""
    for record, _ in _sized_sentences(text, path):
        yield record


def _file_text(texts: pa.Array, index: int) -> str:
    """A file's text; bytes that are not UTF-8 (Spark's text reader passes them through) are
    kept as lone surrogates, so only the sentences holding them are rejected."""
    value = texts[index]
    if not value.is_valid:
        return ""
    raw = value.as_buffer().to_pybytes()
    return raw.decode("utf-8", "surrogateescape")


def sentence_batches(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """The ``mapInArrow`` body: batches of files (``path``, ``text``: the whole file) in,
    batches of :data:`SENTENCE_SCHEMA` out, each at most :data:`MAX_BATCH_ROWS` sentences
    and about :data:`MAX_BATCH_CHARS` characters of CoNLL-U."""
    rows: list[dict[str, Any]] = []
    chars = 0
    for batch in batches:
        paths, texts = batch.column("path"), batch.column("text")
        for index in range(batch.num_rows):
            # One file's text at a time: a batch of files is not turned into Python at once.
            path = paths[index].as_py() or ""
            for record, size in _sized_sentences(_file_text(texts, index), path):
                record[FILE_COLUMN] = path
                rows.append(record)
                chars += size
                if len(rows) >= MAX_BATCH_ROWS or chars >= MAX_BATCH_CHARS:
                    yield pa.RecordBatch.from_pylist(rows, schema=SENTENCE_SCHEMA)
                    rows, chars = [], 0
    if rows:
        yield pa.RecordBatch.from_pylist(rows, schema=SENTENCE_SCHEMA)
