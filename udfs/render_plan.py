"""What a Python worker needs to render one source, and the columns readers add to a source
frame: plain data, shared by the readers (on the driver) and the renderer (on the workers)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from udfs.flan_formats import DEFAULT_FORMATS
from udfs.templating import TemplateSpec

# Columns the readers add to a source frame; every other column is the record itself.
JSON_TEXT_COLUMN = "_im_json"  # binary: the line's bytes, decoded per record
UNDECODABLE = "_im_undecodable"  # set on a row Arrow could not turn into Python values
CORRUPT_COLUMN = "_im_corrupt"
FILE_COLUMN = "_im_file"
# A reader that parses records itself (CoNLL-U) says why a corrupt row is one: a reason code
# and a detail naming the line.
CORRUPT_REASON = "_im_corrupt_reason"
CORRUPT_DETAIL = "_im_corrupt_detail"
READER_COLUMNS = (JSON_TEXT_COLUMN, CORRUPT_COLUMN, FILE_COLUMN, CORRUPT_REASON, CORRUPT_DETAIL)

RENDER_STAGE = "render"


@dataclass(frozen=True)
class RenderPlan:
    """Everything a Python worker needs to render one source: small, plain, picklable."""

    source: str
    record_format: Literal["json_text", "columns"]
    templates: tuple[TemplateSpec, ...]
    templates_per_record: int | None  # None: every template
    seed: int
    id_field: str | None = None
    language: str | None = None
    language_field: str | None = None
    target_language: str | None = None
    target_language_field: str | None = None
    # Translation: the fields in the target language (compared with target_language).
    target_fields: tuple[str, ...] = ()
    renames: tuple[tuple[str, str], ...] = ()
    field_types: tuple[tuple[str, str], ...] = ()
    allow_empty: bool = False
    # The fields dedup compares; empty: every field any of the source's templates inserts.
    dedup_fields: tuple[str, ...] = ()
    task: str | None = None  # the registry's task: every record's, unless task_field has one
    task_field: str | None = None
    categories_field: str | None = None
    origins: tuple[str, ...] = ()  # the registry's origin datasets
    origin_field: str | None = None
    # Per-record bounds (jobs.config.models.RenderLimits).
    max_chars: int = 1_000_000
    max_seconds: float = 0.5
    # FLAN formats a row may have (udfs.flan_formats); SuperNI encodings (udfs.superni_demos):
    # when given, they are the rows' formats instead.
    formats: tuple[str, ...] = DEFAULT_FORMATS
    superni_encodings: tuple[str, ...] = ()
    max_demo_chars: int = 2000
    # Translation: also the pair the other way round, (source field, target field) swapped.
    invert_pairs: tuple[tuple[str, str], ...] = ()
    # CoNLL-U: each `# key = value` comment of the record's `comments` map is also a field
    # (`{{ text_en }}`), unless the record has a field of that name.
    comment_fields: bool = False

    @property
    def rows_per_record(self) -> int:
        per_template = 2 if self.invert_pairs else 1
        if self.templates_per_record is None:
            return len(self.templates) * per_template
        return min(self.templates_per_record, len(self.templates)) * per_template
