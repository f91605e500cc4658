"""The templates to vary: a template file, a folder of them, or every hand-written template of a
pipeline conf, each with the sample records it is checked on."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

import yaml

from jobs.config import ConfigError, RunPlan, SourcePlan, load_plan
from jobs.variants.checks import Sample
from jobs.variants.generate import Original
from jobs.variants.variant_files import VARIANTS_DIR
from udfs.template_files import TemplateFileError, generated_by, load_template_file
from udfs.templating import TemplateCompileError, compile_template, mark_blanks

SKIPPED_DIRS = frozenset({VARIANTS_DIR, "meta"})


def is_pipeline_conf(path: Path) -> bool:
    if path.suffix not in (".yaml", ".yml") or not path.is_file():
        return False
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False  # a promptsource file with its tags, or no YAML: not a conf
    return isinstance(document, dict) and "sources" in document and "templates" not in document


def template_files(folder: Path) -> list[Path]:
    """Every ``.jinja`` file and promptsource ``templates.yaml`` under the folder, in path order,
    except generated variants and the meta prompts."""
    found = [
        path
        for path in sorted(folder.rglob("*"))
        if path.is_file()
        and (path.suffix == ".jinja" or path.name in ("templates.yaml", "templates.yml"))
        and not SKIPPED_DIRS & set(path.relative_to(folder).parts[:-1])
    ]
    if not found:
        raise ConfigError(f"{folder}: no .jinja or templates.yaml file in this folder")
    return found


def read_records(path: Path, limit: int) -> tuple[Sample, ...]:
    """Sample records from a JSON Lines file, marked like the build marks them (blank fields)."""
    samples = []
    try:
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if len(samples) >= limit:
                    break
                if line.strip():
                    record = json.loads(line)
                    if not isinstance(record, dict):
                        raise ValueError(f"line {number} is not a JSON object")
                    key = str(record.get("id", f"line-{number}"))
                    samples.append(Sample(key, mark_blanks(record)))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"--records {path}: {exc}") from None
    if not samples:
        raise ConfigError(f"--records {path}: no record in the file")
    return tuple(samples)


def file_originals(paths: Iterable[Path], samples: tuple[Sample, ...]) -> list[Original]:
    originals = []
    for path in paths:
        try:
            specs = load_template_file(path)
            for spec in specs:
                compile_template(spec)
        except (TemplateFileError, TemplateCompileError) as exc:
            raise ConfigError(str(exc)) from None
        originals += [Original(s, path, samples) for s in specs if generated_by(s) is None]
    return originals


def conf_originals(
    conf: Path, output: str | None, samples_of: Callable[[RunPlan, SourcePlan], tuple[Sample, ...]]
) -> tuple[RunPlan, list[Original]]:
    """Each hand-written template of the conf once, with records of the first source using it
    (``samples_of`` reads them: a Spark job)."""
    plan = load_plan(str(conf), output)
    originals: dict[tuple[str, str], Original] = {}
    for source in plan.sources:
        specs = [s for s in source.render.templates if generated_by(s) is None]
        fresh = [s for s in specs if (s.origin, s.template_id) not in originals]
        if not fresh:
            continue
        samples = samples_of(plan, source)
        for spec in fresh:
            originals[(spec.origin, spec.template_id)] = Original(
                spec, Path(spec.origin), samples, source.name
            )
    return plan, list(originals.values())
