"""`instructmill dedup ARGS` as `spark-submit jobs/dedup_job.py` or `python -m jobs.dedup_job`."""

import runpy
import sys
from pathlib import Path

if __name__ == "__main__":
    sys.argv[1:1] = ["dedup"]
    runpy.run_path(str(Path(__file__).with_name("cli.py")), run_name="__main__")
