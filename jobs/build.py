"""`instructmill build ARGS` as `spark-submit jobs/build.py ARGS` or `python -m jobs.build ARGS`."""

import runpy
import sys
from pathlib import Path

if __name__ == "__main__":
    sys.argv[1:1] = ["build"]
    runpy.run_path(str(Path(__file__).with_name("cli.py")), run_name="__main__")
