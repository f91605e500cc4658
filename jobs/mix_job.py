"""`instructmill mix ARGS` as `spark-submit jobs/mix_job.py` or `python -m jobs.mix_job`."""

import runpy
import sys
from pathlib import Path

if __name__ == "__main__":
    sys.argv[1:1] = ["mix"]
    runpy.run_path(str(Path(__file__).with_name("cli.py")), run_name="__main__")
