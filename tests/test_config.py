"""Config validation: errors name the file, the key and what was expected, before Spark."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.config import ConfigError, load_plan


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write(tmp_path / "data" / "a.jsonl", '{"id": 1, "text": "hi", "label": "pos"}\n')
    write(tmp_path / "templates" / "sent" / "plain.jinja", "{{ text }} ||| {{ label }}\n")
    write(
        tmp_path / "templates" / "sent" / "templates.yaml",
        "dataset: s\ntemplates:\n"
        "  u-1: !Template\n    answer_choices: neg ||| pos\n    id: u-1\n"
        "    jinja: '{{ text }} ||| {{ label }}'\n    metadata: !TemplateMetadata\n"
        "      original_task: true\n    name: first\n    reference: ''\n"
        "  u-2: !Template\n    answer_choices: null\n    id: u-2\n"
        "    jinja: 'Say {{ text }} ||| {{ label }}'\n    name: second\n    reference: ''\n",
    )
    write(
        tmp_path / "conf" / "datasets" / "a.yaml",
        "name: sent_a\npath: ../../data/*.jsonl\nformat: jsonl\nid_field: id\nlanguage: en\n"
        "task: sentiment\nlicense: MIT\ntemplates:\n  - ../../templates/sent/plain.jinja\n"
        "  - path: ../../templates/sent/templates.yaml\n    names: [second]\n",
    )
    write(tmp_path / "conf" / "p.yaml", "sources: [datasets/*.yaml]\noutput: ../out\nseed: 3\n")
    return tmp_path


def test_valid_plan_resolves_paths_templates_and_defaults(project: Path) -> None:
    plan = load_plan(project / "conf" / "p.yaml")
    assert plan.output == str(project / "out")
    assert tuple(plan.pipeline.partition_by) == ("language", "task_cluster")
    (source,) = plan.sources
    assert source.paths == (str(project / "data" / "a.jsonl"),)
    assert [t.template_id for t in source.render.templates] == ["sent/plain", "u-2"]
    assert source.registry.task_cluster is None  # the tag stage looks the task up in the taxonomy
    assert source.render.seed == 3 and source.render.templates_per_record == 1


def test_output_override(project: Path, tmp_path: Path) -> None:
    plan = load_plan(project / "conf" / "p.yaml", output_override="s3a://bucket/run")
    assert plan.output == "s3a://bucket/run"


def error_of(project: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_plan(project / "conf" / "p.yaml")
    return str(caught.value)


def test_unknown_key_names_file_key_and_allowed(project: Path) -> None:
    reg = project / "conf" / "datasets" / "a.yaml"
    reg.write_text(reg.read_text() + "langauge: fr\n")
    message = error_of(project)
    assert str(reg) in message and "langauge" in message and "unknown key" in message
    assert "language_field" in message  # the allowed keys are listed


def test_unknown_key_in_nested_template_ref(project: Path) -> None:
    reg = project / "conf" / "datasets" / "a.yaml"
    reg.write_text(reg.read_text().replace("names: [second]", "names: [second]\n    nmes: [x]"))
    message = error_of(project)
    assert "templates[1].nmes" in message and "unknown key" in message
    assert "(did you mean 'names'?)" in message


def test_unknown_key_suggests_the_nearest_allowed_key(project: Path) -> None:
    pipeline = project / "conf" / "p.yaml"
    base = "sources: [datasets/*.yaml]\noutput: ../out\n"
    pipeline.write_text(base + "dedup: {treshold: 0.8}\n")
    message = error_of(project)
    assert f"{pipeline}: dedup.treshold: unknown key 'treshold' (did you mean 'threshold'?); " in (
        message
    )
    assert "allowed keys here: " in message and "num_perm" in message
    # Nothing near: no guess, only the allowed keys.
    pipeline.write_text(base + "dedup: {zzzqqq: 1}\n")
    message = error_of(project)
    assert "unknown key 'zzzqqq'; allowed keys here: " in message and "did you mean" not in message


def test_missing_required_key(project: Path) -> None:
    reg = project / "conf" / "datasets" / "a.yaml"
    reg.write_text(reg.read_text().replace("license: MIT\n", ""))
    assert "license: required key is missing" in error_of(project)


def test_wrong_value_type_in_pipeline(project: Path) -> None:
    (project / "conf" / "p.yaml").write_text(
        "sources: [datasets/*.yaml]\noutput: ../out\ntemplates_per_record: some\n"
    )
    message = error_of(project)
    assert "p.yaml: templates_per_record" in message and "'some'" in message


def test_bad_partition_column(project: Path) -> None:
    (project / "conf" / "p.yaml").write_text(
        "sources: [datasets/*.yaml]\noutput: ../out\npartition_by: [langauge]\n"
    )
    assert "partition_by[0]" in error_of(project)


def test_missing_data_and_template_files(project: Path) -> None:
    reg = project / "conf" / "datasets" / "a.yaml"
    text = reg.read_text()
    reg.write_text(text.replace("../../data/*.jsonl", "../../data/*.parquet"))
    assert "path: the pattern" in error_of(project) and "matches no file" in error_of(project)
    reg.write_text(text.replace("plain.jinja", "nope.jinja"))
    assert "templates[0]: template file" in error_of(project)


def test_unknown_promptsource_name_lists_available(project: Path) -> None:
    reg = project / "conf" / "datasets" / "a.yaml"
    reg.write_text(reg.read_text().replace("names: [second]", "names: [third]"))
    message = error_of(project)
    assert "templates[1]" in message and "'third'" in message and "['first', 'second']" in message


def test_template_that_does_not_compile_fails_the_plan(project: Path) -> None:
    (project / "templates" / "sent" / "plain.jinja").write_text("{{ text ||| {{ label }}")
    message = error_of(project)
    assert "templates[0]" in message and "plain.jinja" in message


def test_language_and_language_field_are_exclusive(project: Path) -> None:
    reg = project / "conf" / "datasets" / "a.yaml"
    reg.write_text(reg.read_text() + "language_field: lang\n")
    assert "not both" in error_of(project)


def test_duplicate_source_names(project: Path) -> None:
    reg = project / "conf" / "datasets" / "a.yaml"
    write(project / "conf" / "datasets" / "b.yaml", reg.read_text())
    assert "already used" in error_of(project)


def test_not_yaml_mapping(project: Path) -> None:
    (project / "conf" / "p.yaml").write_text("- just\n- a list\n")
    assert "expected a mapping" in error_of(project)


def test_files_spark_would_skip_or_reglob_are_refused(project: Path) -> None:
    reg = project / "conf" / "datasets" / "a.yaml"
    text = reg.read_text()
    write(project / "data" / "_part.jsonl", '{"id": 2}\n')
    reg.write_text(text.replace("../../data/*.jsonl", "../../data/_part.jsonl"))
    assert "Spark skips files whose names start with '_' or '.'" in error_of(project)
    write(project / "data" / "br{1}.jsonl", '{"id": 2}\n')
    reg.write_text(text.replace("../../data/*.jsonl", "../../data/br{1}.jsonl"))
    assert "which Spark reads as a glob" in error_of(project)


@pytest.mark.parametrize(
    ("files", "problem"),
    [
        ({"a.csv": "id,text,id\n1,x,2\n"}, "repeats a column name"),
        ({"a.csv": "id,,label\n1,x,2\n"}, "empty column name"),
        ({"a.csv": ""}, "no header row"),
        ({"a.csv": "id,text\n1,x\n", "b.csv": "text,id\nx,1\n"}, "but"),
    ],
)
def test_csv_header_problems_fail_the_plan_naming_the_file(
    project: Path, files: dict[str, str], problem: str
) -> None:
    for name, content in files.items():
        write(project / "csv" / name, content)
    reg = project / "conf" / "datasets" / "a.yaml"
    reg.write_text(
        reg.read_text().replace("../../data/*.jsonl", "../../csv/*.csv").replace("jsonl", "csv")
    )
    message = error_of(project)
    assert problem in message and "/csv/" in message


def test_a_key_given_twice_is_an_error(project: Path) -> None:
    reg = project / "conf" / "datasets" / "a.yaml"
    reg.write_text(reg.read_text() + "license: Apache-2.0\n")
    assert "key 'license' is given twice" in error_of(project)


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("seed: '7'", "seed"),
        ("templates_per_record: true", "templates_per_record"),
        ("rows_per_file: 0", "rows_per_file"),
        ("spark: {a: [1]}", "spark.a"),
    ],
)
def test_values_are_not_coerced(project: Path, line: str, key: str) -> None:
    (project / "conf" / "p.yaml").write_text(
        f"sources: [datasets/*.yaml]\noutput: ../out\n{line}\n"
    )
    assert f"p.yaml: {key}: " in error_of(project)


def test_options_for_another_format_name_the_key(project: Path) -> None:
    reg = project / "conf" / "datasets" / "a.yaml"
    reg.write_text(reg.read_text() + "csv: {delimiter: ';'}\n")
    assert "a.yaml: csv: 'csv' options apply only to format: csv" in error_of(project)


def test_langid_model_must_exist_and_codes_must_be_iso(project: Path) -> None:
    pipeline = project / "conf" / "p.yaml"
    pipeline.write_text(
        "sources: [datasets/*.yaml]\noutput: ../out\nlangid: {model: ../models/none.ftz}\n"
    )
    message = error_of(project)
    assert "langid.model" in message and "make models" in message
    pipeline.write_text(
        "sources: [datasets/*.yaml]\noutput: ../out\nlangid: {thresholds: {english: 0.5}}\n"
    )
    assert "langid.thresholds" in error_of(project)
    pipeline.write_text("sources: [datasets/*.yaml]\noutput: ../out\nlangid: {enabled: false}\n")
    assert load_plan(pipeline).langid is None


def test_translation_names_target_fields(project: Path) -> None:
    reg = project / "conf" / "datasets" / "a.yaml"
    reg.write_text(reg.read_text() + "target_language: de\n")
    assert "target_fields" in error_of(project)
    reg.write_text(reg.read_text() + "target_fields: [text]\n")
    (source,) = load_plan(project / "conf" / "p.yaml").sources
    assert source.render.target_language == "de" and source.render.target_fields == ("text",)


def test_dedup_settings_are_checked(project: Path) -> None:
    pipeline = project / "conf" / "p.yaml"
    base = "sources: [datasets/*.yaml]\noutput: ../out\n"
    assert load_plan(pipeline).dedup is not None  # on by default
    pipeline.write_text(base + "dedup: {enabled: false}\n")
    assert load_plan(pipeline).dedup is None
    pipeline.write_text(base + "dedup: {threshold: 1.5}\n")
    assert "dedup.threshold" in error_of(project)
    pipeline.write_text(base + "dedup: {checkpoint_every: 20}\n")
    assert "dedup.checkpoint_every" in error_of(project)
    pipeline.write_text(base + "dedup: {source_priority: [sent_a]}\n")
    assert "representative is 'source_priority'" in error_of(project)
    pipeline.write_text(
        base + "dedup: {representative: source_priority, source_priority: [nope]}\n"
    )
    message = error_of(project)
    assert "dedup.source_priority" in message and "sent_a" in message
    pipeline.write_text(
        base + "dedup: {representative: source_priority, source_priority: [sent_a]}\n"
    )
    assert load_plan(pipeline).dedup.source_priority == ["sent_a"]  # type: ignore[union-attr]


def test_dedup_fields_reach_the_render_plan(project: Path) -> None:
    reg = project / "conf" / "datasets" / "a.yaml"
    reg.write_text(reg.read_text() + "dedup_fields: [text]\n")
    (source,) = load_plan(project / "conf" / "p.yaml").sources
    assert source.render.dedup_fields == ("text",)


def test_taxonomy_names_are_checked_against_the_taxonomy(project: Path) -> None:
    registry = project / "conf" / "datasets" / "a.yaml"
    text = registry.read_text(encoding="utf-8")
    registry.write_text(text.replace("task: sentiment\n", ""), encoding="utf-8")
    assert "give 'task' (the source's task) or 'task_field'" in error_of(project)
    registry.write_text(text + "task_cluster: sentimental\n", encoding="utf-8")
    message = error_of(project)
    assert "a.yaml: task_cluster: 'sentimental' is not a cluster" in message
    assert "task_clusters.yaml" in message
    registry.write_text(text + "crosswalk: flan\n", encoding="utf-8")
    assert "crosswalk: 'flan' is not a crosswalk" in error_of(project)
    registry.write_text(text, encoding="utf-8")
    pipeline = project / "conf" / "p.yaml"
    pipeline.write_text(pipeline.read_text() + "heldout_clusters: [nli]\n", encoding="utf-8")
    assert "p.yaml: heldout_clusters: ['nli'] are not clusters" in error_of(project)
    pipeline.write_text(
        pipeline.read_text().replace("heldout_clusters: [nli]", "heldout_clusters: [entailment]")
    )
    plan = load_plan(project / "conf" / "p.yaml")
    assert tuple(plan.pipeline.heldout_clusters) == ("entailment",)
    assert plan.taxonomy.lookup("sentiment") == "sentiment"


def test_mixture_config_names_the_key(tmp_path: Path) -> None:
    from jobs.config import load_mixture_config

    conf = write(tmp_path / "m.yaml", "groups: {by: source, weights: {a: 0}}\n")
    with pytest.raises(ConfigError, match=r"m\.yaml: groups: every group weight is 0"):
        load_mixture_config(conf)
    write(conf, "languages: {alpha: 2}\n")
    with pytest.raises(ConfigError, match=r"languages\.alpha"):
        load_mixture_config(conf)
