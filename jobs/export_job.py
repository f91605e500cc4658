"""`instructmill export ARGS` as `spark-submit jobs/export_job.py ARGS` or
`python -m jobs.export_job ARGS`."""

import runpy
import sys
from pathlib import Path

if __name__ == "__main__":
    sys.argv[1:1] = ["export"]
    runpy.run_path(str(Path(__file__).with_name("cli.py")), run_name="__main__")
