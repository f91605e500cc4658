r"""instructmill's nightly load as an Airflow DAG: one ``spark-submit`` of ``jobs/cli.py build``
a night, with ``--run-date {{ ds }}``, into one output.

Copy (or link) this file into the DAG folder of an Airflow 3 deployment that has
``apache-airflow-providers-apache-spark`` and ``spark-submit`` on the workers' ``PATH``
(``tests/test_airflow_dag.py`` pins the versions it is tested with). The Spark master and
deploy mode are those of the Airflow connection ``spark_default`` (host ``yarn``,
``spark://HOST:7077`` or ``k8s://...``; extra ``{"deploy-mode": "client"}``).

Why the DAG looks the way it does:

- **One load after another.** Each load deduplicates against what earlier dates committed, so
  ``max_active_runs=1`` and ``depends_on_past=True``: a date runs only after the date before it
  succeeded, and a date that failed holds the later ones back until it is cleared and succeeds.
  ``catchup=True``: nights the scheduler missed are loaded, oldest first, before the next one
  (set ``INSTRUCTMILL_START_DATE`` to the first date to load; nights before it never run).
- **Retries.** A rerun of a date continues the stopped run of that date and replaces exactly
  that date, so retrying is safe: 2 retries, 15 minutes apart; a try that runs 8 hours is
  stopped and retried.
- **The run date** is ``{{ ds }}``, the date of the night the run fires (UTC), as in the cron
  line below: the ``CronTriggerTimetable`` makes the 02:00 run of 2026-11-21 load
  ``--run-date 2026-11-21``.
- **The packed environment** (``make env-pack``) goes to every executor as
  ``--conf spark.archives=dist/instructmill-env.tar.gz#env``, which is what spark-submit makes
  of ``--archives dist/instructmill-env.tar.gz#env`` (the operator's ``archives`` argument is
  not templated, so it could not take the Variable), with
  ``spark.pyspark.python=./env/bin/python``; our code (``make dist``) with
  ``--py-files dist/instructmill.zip``.

Settings, each an Airflow Variable read when the task runs (``airflow variables set KEY VALUE``,
or the environment variable ``AIRFLOW_VAR_<KEY in capitals>`` on the workers); the defaults are
this checkout's files (its root is this file's parent folder's parent, or ``INSTRUCTMILL_ROOT``
in the DAG processor's environment):

=============================  ================================================================
``instructmill_application``   the script spark-submit runs (``jobs/cli.py``)
``instructmill_conf``          the pipeline file (``conf/demo.yaml``)
``instructmill_output``        the output folder or URI (``out/nightly``)
``instructmill_archives``      the archives: the packed environment, unpacked as ``env``
                               (``dist/instructmill-env.tar.gz#env``), and any others
``instructmill_code_zip``      the code zip (``dist/instructmill.zip``)
``instructmill_driver_python`` the driver's Python in client mode (``.venv/bin/python``)
=============================  ================================================================

In cluster deploy mode (YARN, Kubernetes) the driver runs ``./env/bin/python`` from the archive
and no checkout exists there: set ``instructmill_driver_python`` to ``./env/bin/python`` (what
the driver runs there anyway), ``instructmill_archives`` to the environment and a job archive
(``hdfs:///envs/instructmill-env.tar.gz#env,instructmill-job.zip#job``), the conf to
``job/conf/pipeline.yaml`` and the output to a URI, as the README's "Running on a cluster"
describes.

Without Airflow, the same load from cron: first the command (client mode, from the checkout;
the YARN master is an example, any master works), then its crontab line. cron has no retries,
catchup or ``depends_on_past``: rerun a failed night by hand with its date (a rerun continues
the stopped run and replaces exactly that date). ``flock`` makes a night wait while the night
before still runs, so two loads never overlap. In a crontab ``%`` must be written ``\%``::

    spark-submit --master yarn --deploy-mode client --name instructmill-nightly \
        --archives dist/instructmill-env.tar.gz#env \
        --conf spark.pyspark.python=./env/bin/python \
        --conf spark.pyspark.driver.python=$PWD/.venv/bin/python \
        --conf spark.driver.extraJavaOptions=-Dlog4j2.configurationFile=$PWD/conf/log4j2.properties \
        --py-files dist/instructmill.zip \
        jobs/cli.py build --conf conf/demo.yaml --output out/nightly \
        --run-date "$(date -u +%F)"

    # cron's PATH is short: name the directory of spark-submit (the cluster's Spark, or .venv/bin)
    PATH=/srv/instructmill/.venv/bin:/usr/local/bin:/usr/bin:/bin
    0 2 * * * cd /srv/instructmill && flock /tmp/instructmill-nightly.lock spark-submit --master yarn --deploy-mode client --name instructmill-nightly --archives dist/instructmill-env.tar.gz#env --conf spark.pyspark.python=./env/bin/python --conf spark.pyspark.driver.python=/srv/instructmill/.venv/bin/python --conf spark.driver.extraJavaOptions=-Dlog4j2.configurationFile=/srv/instructmill/conf/log4j2.properties --py-files dist/instructmill.zip jobs/cli.py build --conf conf/demo.yaml --output out/nightly --run-date "$(date -u +\%F)" >> $HOME/instructmill-nightly.log 2>&1
"""  # noqa: E501

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import DAG, CronTriggerTimetable

ROOT = Path(os.environ.get("INSTRUCTMILL_ROOT") or Path(__file__).resolve().parent.parent)
START_DATE = os.environ.get("INSTRUCTMILL_START_DATE", "2026-12-01")
SPARK_CONN_ID = os.environ.get("INSTRUCTMILL_SPARK_CONN_ID", "spark_default")


def setting(key: str, default: str | Path) -> str:
    """A template of the Airflow Variable ``instructmill_KEY``, or ``default`` without one."""
    return "{{ var.value.get('instructmill_" + key + "', " + json.dumps(str(default)) + ") }}"


with DAG(
    dag_id="instructmill_nightly",
    description="instructmill build: one dated load a night",
    schedule=CronTriggerTimetable("0 2 * * *", timezone="UTC"),
    start_date=pendulum.parse(START_DATE, tz="UTC"),
    catchup=True,
    max_active_runs=1,
    tags=["instructmill", "spark"],
    default_args={
        "owner": "instructmill",
        "depends_on_past": True,
        "retries": 2,
        "retry_delay": timedelta(minutes=15),
        "execution_timeout": timedelta(hours=8),
    },
) as dag:
    SparkSubmitOperator(
        task_id="build",
        conn_id=SPARK_CONN_ID,
        name="instructmill-nightly-{{ ds }}",
        application=setting("application", ROOT / "jobs" / "cli.py"),
        application_args=[
            "build",
            "--conf",
            setting("conf", ROOT / "conf" / "demo.yaml"),
            "--output",
            setting("output", ROOT / "out" / "nightly"),
            "--run-date",
            "{{ ds }}",
        ],
        py_files=setting("code_zip", ROOT / "dist" / "instructmill.zip"),
        conf={
            # = --archives ENV_ARCHIVE#env: spark-submit reads --archives into this very
            # property. The operator's own `archives` is not a templated field.
            "spark.archives": setting(
                "archives", f"{ROOT / 'dist' / 'instructmill-env.tar.gz'}#env"
            ),
            "spark.pyspark.python": "./env/bin/python",
            "spark.pyspark.driver.python": setting(
                "driver_python", ROOT / ".venv" / "bin" / "python"
            ),
            "spark.driver.extraJavaOptions": "-Dlog4j2.configurationFile="
            + str(ROOT / "conf" / "log4j2.properties"),
        },
    )
