"""``instructmill templates paraphrase|translate``: ask a chat model the user runs (any
OpenAI-compatible server) for variants of templates, check every answer, and write the ones
that pass to ``variants/templates.yaml`` beside the original, with a review sheet.

Nothing generated is used by a build until a person marks it ``reviewed: true``."""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from pyspark.sql import SparkSession

from jobs.config import DEFAULT_LID_MODEL, ConfigError
from jobs.runner import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, JavaMissingError, build_session
from jobs.variants.chat_client import ChatClient, ChatSettings
from jobs.variants.generate import Ask, Original, Outcome, accepted, vary
from jobs.variants.meta_prompts import META_DIR, MetaPromptError, load_meta_prompt
from jobs.variants.originals import (
    conf_originals,
    file_originals,
    is_pipeline_conf,
    read_records,
    template_files,
)
from jobs.variants.reply_cache import ReplyCache, default_cache_dir
from jobs.variants.review_sheet import review_sheet, run_record, run_record_text
from jobs.variants.samples import sampler
from jobs.variants.variant_files import variants_file, write_text, write_variants
from udfs.langid import LanguageIdentifier
from udfs.language_codes import UnknownLanguageLabel, declared_code
from udfs.template_files import TemplateFileError

ENDPOINT_ENV = "INSTRUCTMILL_LLM_ENDPOINT"
MODEL_ENV = "INSTRUCTMILL_LLM_MODEL"


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target", type=Path, help="a template file, a folder of templates, or a pipeline conf"
    )
    parser.add_argument("--n", type=int, default=5, help="variants asked per template")
    parser.add_argument("--endpoint", default=os.environ.get(ENDPOINT_ENV),
                        help=f"the server's API base, e.g. http://127.0.0.1:8000/v1 "
                        f"(default: ${ENDPOINT_ENV})")  # fmt: skip
    parser.add_argument("--model", default=os.environ.get(MODEL_ENV),
                        help=f"the served model's name (default: ${MODEL_ENV})")  # fmt: skip
    parser.add_argument("--api-key-env", default="OPENAI_API_KEY", metavar="VAR",
                        help="the environment variable holding the API key, if the server "
                        "wants one (default: OPENAI_API_KEY)")  # fmt: skip
    parser.add_argument("--response", action="store_true",
                        help="also vary the response part (default: the instruction only, the "
                        "response kept byte for byte)")  # fmt: skip
    parser.add_argument("--records", type=Path,
                        help="JSON Lines sample records for a file or folder (a conf's sources "
                        "give their own)")  # fmt: skip
    parser.add_argument("--samples", type=int, default=20, help="sample records checked")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    parser.add_argument("--retries", type=int, default=4, help="retries on 429, 5xx, timeouts")
    parser.add_argument("--backoff", type=float, default=1.0,
                        help="seconds before the first retry (doubles each time)")  # fmt: skip
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--max-tokens", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=0, help="sent to servers that honour it")
    parser.add_argument("--cache-dir", type=Path, default=default_cache_dir(),
                        help="where replies are kept (default: %(default)s)")  # fmt: skip
    parser.add_argument("--meta-dir", type=Path, default=META_DIR,
                        help="the prompts' folder (paraphrase.jinja, translate.jinja)")  # fmt: skip
    parser.add_argument("--langid-model", type=Path,
                        help="fastText model for translate's check (default: the conf's, "
                        "else models/lid.176.ftz)")  # fmt: skip
    parser.add_argument("--master", help="Spark master for reading a conf's sample records")


def add_templates_arguments(parser: argparse.ArgumentParser) -> None:
    kinds = parser.add_subparsers(dest="kind", required=True)
    paraphrase = kinds.add_parser("paraphrase", help="reword templates in their own language")
    _common(paraphrase)
    translate = kinds.add_parser("translate", help="translate templates into other languages")
    _common(translate)
    translate.add_argument("--to", required=True, metavar="LANG[,LANG...]",
                           help="target languages (ISO 639 codes)")  # fmt: skip
    parser.set_defaults(handler=templates_command)


def _languages(args: argparse.Namespace) -> tuple[str | None, ...]:
    if args.kind != "translate":
        return (None,)
    codes = [code.strip() for code in args.to.split(",") if code.strip()]
    if not codes:
        raise ConfigError("--to: give at least one language code")
    try:
        return tuple(dict.fromkeys(declared_code(code) for code in codes))
    except UnknownLanguageLabel as exc:
        raise ConfigError(f"--to: {exc}") from None


def _settings(args: argparse.Namespace) -> ChatSettings:
    if not args.endpoint or not args.model:
        raise ConfigError(
            f"give --endpoint and --model (or set ${ENDPOINT_ENV} and ${MODEL_ENV}): the "
            "OpenAI-compatible server that answers, e.g. `vllm serve` at http://127.0.0.1:8000/v1"
        )
    if args.n < 1 or args.concurrency < 1 or args.retries < 0 or args.timeout <= 0:
        raise ConfigError("--n and --concurrency must be at least 1, --retries at least 0")
    return ChatSettings(
        endpoint=args.endpoint,
        model=args.model,
        api_key=os.environ.get(args.api_key_env) or None,
        timeout=args.timeout,
        retries=args.retries,
        backoff=args.backoff,
        concurrency=args.concurrency,
        temperature=args.temperature,
        max_tokens=args.max_tokens,
        seed=args.seed,
    )


def _originals(args: argparse.Namespace) -> tuple[list[Original], str]:
    """The originals and the fastText model that judges translations."""
    target: Path = args.target
    model = str(args.langid_model or DEFAULT_LID_MODEL)
    if is_pipeline_conf(target):
        # A session already running in this process (a notebook, a test) is used, not stopped.
        active = SparkSession.getActiveSession()
        spark = active or build_session("instructmill templates", args.master)
        try:
            plan, originals = conf_originals(target, None, sampler(spark, args.samples))
        finally:
            if active is None:
                spark.stop()
        return originals, str(args.langid_model or plan.langid_model or DEFAULT_LID_MODEL)
    if not target.exists():
        raise ConfigError(f"{target}: no such template file, folder or pipeline conf")
    if args.records is None:
        raise ConfigError(
            f"{target}: give --records FILE.jsonl, sample records the templates render on "
            "(a pipeline conf reads its sources' records instead)"
        )
    files = template_files(target) if target.is_dir() else [target]
    return file_originals(files, read_records(args.records, args.samples)), model


def _write(outcomes: Sequence[Outcome], ask: Ask) -> list[str]:
    """Per variants folder: the merged templates.yaml, the review sheet, the run record."""
    by_file: dict[Path, list[Outcome]] = {}
    for outcome in outcomes:
        by_file.setdefault(variants_file(outcome.original.file), []).append(outcome)
    lines = []
    for path, group in by_file.items():
        generated = [variant for outcome in group for variant in accepted(outcome, ask)]
        added, kept = write_variants(path, generated)
        write_text(path.parent / f"review-{ask.kind}.md", review_sheet(path.parent, group, ask))
        write_text(path.parent / f"{ask.kind}-run.json", run_record_text(run_record(group, ask)))
        lines.append(f"{path}: {added} new, {kept} kept; review {path.parent}/review-{ask.kind}.md")
    return lines


def _summary(outcomes: Sequence[Outcome], client: ChatClient) -> list[str]:
    reasons: Counter[str] = Counter()
    good = 0
    for outcome in outcomes:
        if outcome.problem is not None:
            reasons[outcome.problem[0]] += 1
        for verdict in outcome.verdicts:
            good += verdict.accepted
            reasons[verdict.reason or ""] += not verdict.accepted
    shown = ", ".join(f"{reason} {count}" for reason, count in sorted(reasons.items()) if count)
    counts = client.counts
    return [
        f"variants: {good} accepted, rejected: {shown or 'none'}",
        f"requests: {counts.sent} sent, {counts.cached} from cache, {counts.failed} failed",
    ]


def templates_command(args: argparse.Namespace) -> int:
    try:
        settings = _settings(args)
        languages = _languages(args)
        meta = load_meta_prompt(args.kind, args.meta_dir)
        originals, lid_model = _originals(args)
    except (ConfigError, MetaPromptError, TemplateFileError) as exc:
        print(f"config error:\n{exc}", file=sys.stderr)
        return EXIT_CONFIG
    except JavaMissingError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_FAILED
    ask = Ask(args.kind, args.n, meta, settings.model, args.response, languages)
    identifier = LanguageIdentifier(lid_model) if args.kind == "translate" else None
    client = ChatClient(settings, ReplyCache(args.cache_dir))
    outcomes = vary(originals, ask, client, identifier)
    try:
        lines = _write(outcomes, ask)
    except TemplateFileError as exc:
        print(f"cannot write the variants:\n{exc}", file=sys.stderr)
        return EXIT_FAILED
    for line in [*lines, *_summary(outcomes, client)]:
        print(line)
    failed = [o for o in outcomes if o.problem is not None and o.problem[0] == "request_failed"]
    for outcome in failed:
        assert outcome.problem is not None
        print(f"{outcome.original.spec.name}: {outcome.problem[1]}", file=sys.stderr)
    # Answers that came are cached: a rerun asks only for what failed.
    return EXIT_FAILED if failed else EXIT_OK
