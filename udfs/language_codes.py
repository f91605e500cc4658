"""The one place where language labels become codes: ISO 639-1 where it exists, else ISO 639-3.

fastText's lid.176 labels are Wikipedia language codes, mostly ISO 639-1, but a few are not
what ISO says they are. GlotLID labels are ``<639-3>_<15924 script>``. Every code that leaves
this module is checked against ISO 639 (iso639-lang's copy of the registration authorities'
tables); a label that maps to nothing valid raises when the model loads, never silently at
row level.
"""

from __future__ import annotations

from functools import lru_cache

from iso639 import Lang
from iso639.exceptions import DeprecatedLanguageValue, InvalidLanguageValue

UNDETERMINED = "und"

# Wikipedia codes in lid.176 whose ISO meaning differs, or that ISO 639-3 does not have.
WIKIPEDIA_TO_ISO = {
    "als": "gsw",  # als.wikipedia is Alemannic (gsw); ISO 'als' is Tosk Albanian
    "bh": "bho",  # bh.wikipedia is Bhojpuri; 'bh' is a deprecated collective code
    "eml": "egl",  # 'eml' (Emilian-Romagnol) was retired in 2009, split into egl and rgn
    "nah": "nci",  # 'nah' is a collective code; nah.wikipedia is written in Classical Nahuatl
}


# Withdrawn ISO 639-1 codes still found in datasets and models (lid.176 says `sh`).
DEPRECATED = {"iw": "he", "in": "id", "ji": "yi", "jw": "jv", "mo": "ro", "sh": "hbs"}

# Filipino and Tagalog: two languages to ISO (neither is the other's macrolanguage), one to
# the models (lid.176 says `tl`) and to the datasets that declare `fil`.
EQUIVALENT = {"fil": "tl"}


class UnknownLanguageLabel(ValueError):
    pass


def _language(code: str) -> Lang | None:
    """The ISO 639 language with this code (639-1, 639-3 or 639-2), None for anything else:
    a name, a family (639-5) or a withdrawn code."""
    parts = ("pt1",) if len(code) == 2 else ("pt3", "pt2t", "pt2b") if len(code) == 3 else ()
    for part in parts:
        try:
            return Lang(**{part: code})
        except (InvalidLanguageValue, DeprecatedLanguageValue):
            continue
    return None


def _code(language: Lang) -> str:
    return str(language.pt1 or language.pt3)


@lru_cache(maxsize=4096)
def iso_code(code: str) -> str:
    """``en``/``eng`` -> ``en``; ``ceb`` -> ``ceb``; raises for codes ISO 639 does not have."""
    code = WIKIPEDIA_TO_ISO.get(code.lower(), code.lower())
    code = DEPRECATED.get(code, code)
    found = _language(code)
    if found is None or not (found.pt1 or found.pt3):
        raise UnknownLanguageLabel(f"{code!r} is not an ISO 639-1 or ISO 639-3 code")
    return _code(found)


def parse_label(label: str) -> tuple[str, str | None]:
    """A model label -> (ISO code, ISO 15924 script if the label names one)."""
    name = label.removeprefix("__label__")
    code, _, script = name.partition("_")
    if code in ("und", "zxx", "mis", "mul"):
        return UNDETERMINED, script or None
    return iso_code(code), (script.title() if len(script) == 4 else None)


def declared_code(value: str) -> str:
    """A declared language (``EN``, ``eng``, ``pt_BR``, ``zh-Hant``) in the one code system;
    region and script subtags are dropped. Raises for anything ISO 639 does not have."""
    return iso_code(value.strip().replace("_", "-").split("-")[0])


@lru_cache(maxsize=4096)
def comparable(code: str) -> str:
    """The code every spelling of one language shares, for comparing a declared code with a
    detected one: its ISO 639-3 macrolanguage's, if it has one. Models and datasets name
    either (lid.176 says `ar`, `arz`, `zh`, `no`; GlotLID `arb`, `cmn`; datasets `nb`,
    `yue`): ``nb``/``nn``/``no`` -> ``no``, ``arz``/``arb`` -> ``ar``, ``yue`` -> ``zh``."""
    code = EQUIVALENT.get(code, code)
    found = _language(code)
    macrolanguage = found.macro() if found is not None else None
    return code if macrolanguage is None else _code(macrolanguage)
