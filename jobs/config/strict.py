"""The base of every config model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    # strict: `seed: "7"` or `templates_per_record: true` are errors, not silent coercions.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
