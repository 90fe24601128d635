"""The queue benchmarks (#15: bench/pass_priority.py, bench/pass_scale.py) run
end to end on tiny numbers against their real servers and print their figure
lines; their figures themselves are for a quiet machine, not for a test."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import NO_PG_REASON, PG_URL

ROOT = Path(__file__).resolve().parents[3]


def run_bench(name: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(ROOT / "bench" / name), "--quick", *args], env=env,
                          capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def check_priority_figures(out: str) -> None:
    assert re.search(r"^campaign alone: +\d+ msg/s \(3000 in [\d.]+ s\)$", out, re.M), out
    assert re.search(r"^campaign with the alerts: +\d+ msg/s \(3000 in [\d.]+ s\), [+-][\d.]+% against alone$",
                     out, re.M), out
    assert re.search(r"^lane: (urgent|REFUSED)", out, re.M), out
    # every urgent event was accepted and reached the relay, where the sink stamped it
    assert re.search(r"^urgent alerts: 20 posted, 20 answered 202, 20 reached the relay", out, re.M), out
    assert re.search(r"^EPS 202 -> relay: p50 \d+ ms, p95 \d+ ms, p99 \d+ ms, max \d+ ms$", out, re.M), out
    assert re.fullmatch(r"transactional p99 \d+ ms", out.strip().splitlines()[-1]), out


def test_pass_priority_prints_its_figures_on_sqlite():
    check_priority_figures(run_bench("pass_priority.py"))


@pytest.mark.postgres
def test_pass_priority_prints_its_figures_on_postgresql():
    if not PG_URL:
        pytest.skip(NO_PG_REASON)
    check_priority_figures(run_bench("pass_priority.py", "--database-url", PG_URL))


@pytest.mark.postgres
def test_pass_scale_sends_each_message_once_with_one_final_cdr_each():
    if not PG_URL:
        pytest.skip(NO_PG_REASON)
    out = run_bench("pass_scale.py", "--database-url", PG_URL, "--processes", "1,4")
    for count, recipients in ((1, 300), (4, 1200)):
        found = re.search(rf"^{count} process(?:es| ) *: +\d+ msg/s \(\d+ from the campaign's start\) \| "
                          rf"{recipients} recipients, the relay got (\d+), duplicates (\d+) \| "
                          rf"sent per process ([\d/]+) \| final CDR per delivery: one each", out, re.M)
        assert found, out
        assert found.group(1) == str(recipients) and found.group(2) == "0", out
        assert len(found.group(3).split("/")) == count, out
    assert re.fullmatch(r"4 processes: \d+\.\dx", out.strip().splitlines()[-1]), out


def test_pass_scale_says_in_one_line_that_it_needs_postgresql():
    env = {key: value for key, value in os.environ.items() if key != "UMS_TEST_DATABASE_URL"}
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "pass_scale.py")], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "needs PostgreSQL" in done.stderr.strip().splitlines()[-1]
