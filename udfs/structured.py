"""The response format of the word-level tasks (``templates/structured/``) and its parser.

One line per word, in sentence order, three fields joined by a tab::

    1<TAB>de<TAB>ADP
    2<TAB>el<TAB>DET

the word's number (from 1), the word exactly as written, and its label (UPOS tag for
``pos_tagging``, lemma for ``lemmas``). Lines are joined by LF, with none at the end.

Why this shape: a word may hold spaces (Vietnamese ``học sinh``), ``/``, ``|``, ``=``, ``:``,
digits, punctuation, or look like a tag itself (``NOUN``), so no in-line separator but one
that CoNLL-U forbids inside a word will do, and CoNLL-U forbids exactly tabs and line
breaks. The renderer strips the response, so it must not begin or end with whitespace that
matters: it begins with the number ``1`` and ends with a label (UPOS tags are never blank), so
even a word that is only a space survives, since no word is first or last on its line. The
numbers let a reader check that no word was dropped or repeated.
"""

from __future__ import annotations

from collections.abc import Sequence

_FORBIDDEN = ("\t", "\n")


def _check(value: str, what: str, index: int) -> None:
    if any(char in value for char in _FORBIDDEN):
        raise ValueError(f"{what} {index}: {value!r} holds a tab or a line break")


def format_tags(words: Sequence[str], tags: Sequence[str]) -> str:
    """``words`` and their ``tags`` (or lemmas) in the response format."""
    if len(words) != len(tags):
        raise ValueError(f"{len(words)} words but {len(tags)} tags")
    if not words:
        raise ValueError("no words")
    lines = []
    for index, (word, tag) in enumerate(zip(words, tags, strict=True), start=1):
        _check(word, "word", index)
        _check(tag, "tag", index)
        if not tag.strip():
            raise ValueError(f"tag {index} is blank")
        lines.append(f"{index}\t{word}\t{tag}")
    return "\n".join(lines)


def parse_tags(response: str) -> list[tuple[str, str]]:
    """The ``(word, tag)`` pairs of a response in the format, in order; a response that is
    not in it raises ``ValueError`` naming the line."""
    if not response:
        raise ValueError("empty response")
    pairs = []
    for index, line in enumerate(response.split("\n"), start=1):
        fields = line.split("\t")
        if len(fields) != 3:
            raise ValueError(f"line {index}: expected 3 tab-separated fields, found {len(fields)}")
        number, word, tag = fields
        if number != str(index):
            raise ValueError(f"line {index}: numbered {number!r}, expected {index}")
        pairs.append((word, tag))
    return pairs
