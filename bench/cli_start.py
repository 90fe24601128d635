"""How long `ums` takes to answer: `ums --help` and `ums status` (on a fresh,
initialised instance), each the median wall time of 10 runs of the installed
command as a child process, next to the floors measured in the same run: a
bare `python -c pass` (the interpreter's own start) and the import of
SQLAlchemy's asyncio engine, which every command that reads the database needs.

    python bench/cli_start.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

UMS = str(Path(sys.executable).parent / "ums")
RUNS = 10


def median_ms(command: list[str], env: dict, cwd: str) -> float:
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        subprocess.run(command, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> None:
    with tempfile.TemporaryDirectory() as home:
        env = {key: value for key, value in os.environ.items() if not key.startswith("UMS_")}
        env["UMS_HOME"] = home
        subprocess.run([UMS, "init"], env=env, cwd=home, check=True, stdout=subprocess.DEVNULL)
        print(f"python -c pass: {median_ms([sys.executable, '-c', 'pass'], env, home):.0f} ms (median of {RUNS})")
        floor = [sys.executable, "-c", "import sqlalchemy.ext.asyncio"]
        print(f"import sqlalchemy.ext.asyncio: {median_ms(floor, env, home):.0f} ms (median of {RUNS})")
        for args in (["--help"], ["status"]):
            print(f"ums {' '.join(args)}: {median_ms([UMS, *args], env, home):.0f} ms (median of {RUNS})")


if __name__ == "__main__":
    main()
