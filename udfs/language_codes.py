"""The one place where language labels become codes: ISO 639-1 where it exists, else ISO 639-3.

fastText's lid.176 labels are Wikipedia language codes, mostly ISO 639-1, but a few are not
what ISO says they are. GlotLID labels are ``<639-3>_<15924 script>``. Every code that leaves
this module is checked against ISO 639 (pycountry's data); a label that maps to nothing valid
raises when the model loads, never silently at row level.
"""

from __future__ import annotations

from functools import lru_cache

import pycountry

UNDETERMINED = "und"

# Wikipedia codes in lid.176 whose ISO meaning differs, or that ISO 639-3 does not have.
WIKIPEDIA_TO_ISO = {
    "als": "gsw",  # als.wikipedia is Alemannic (gsw); ISO 'als' is Tosk Albanian
    "bh": "bho",  # bh.wikipedia is Bhojpuri; 'bh' is a deprecated collective code
    "eml": "egl",  # 'eml' (Emilian-Romagnol) was retired in 2009, split into egl and rgn
    "nah": "nci",  # 'nah' is a collective code; nah.wikipedia is written in Classical Nahuatl
}


# Withdrawn ISO 639-1 codes still found in datasets.
DEPRECATED = {"iw": "he", "in": "id", "ji": "yi", "jw": "jv", "mo": "ro"}

# For comparing a declared code with a detected one: an individual language and the code a
# model (or a dataset) uses for it. lid.176 says `no`, `tl`, `zh`, `ar`...; GlotLID says
# `arb`, `cmn`, `pes`...; datasets say `nb`, `fil`. Partial: the common cases.
SAME_LANGUAGE = {
    "nb": "no", "nn": "no", "fil": "tl", "arb": "ar", "cmn": "zh", "pes": "fa", "prs": "fa",
    "zsm": "ms", "swh": "sw", "ekk": "et", "lvs": "lv", "khk": "mn", "uzn": "uz", "azj": "az",
    "npi": "ne", "ory": "or", "plt": "mg", "ydd": "yi", "gaz": "om", "quy": "qu", "pbt": "ps",
    "als": "sq", "kmr": "ku", "hbs": "sh", "bos": "bs", "hrv": "hr", "srp": "sr",
}  # fmt: skip


class UnknownLanguageLabel(ValueError):
    pass


@lru_cache(maxsize=4096)
def iso_code(code: str) -> str:
    """``en``/``eng`` -> ``en``; ``ceb`` -> ``ceb``; raises for codes ISO 639 does not have."""
    code = WIKIPEDIA_TO_ISO.get(code.lower(), code.lower())
    code = DEPRECATED.get(code, code)
    if len(code) == 2:
        found = pycountry.languages.get(alpha_2=code)
    elif len(code) == 3:
        found = pycountry.languages.get(alpha_3=code)
    else:
        found = None
    if found is None:
        raise UnknownLanguageLabel(f"{code!r} is not an ISO 639-1 or ISO 639-3 code")
    return str(getattr(found, "alpha_2", None) or found.alpha_3)


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


def comparable(code: str) -> str:
    """The code two spellings of one language share (``nb`` and ``no`` -> ``no``)."""
    return SAME_LANGUAGE.get(code, code)
