"""Marketing, finance and operations drive PASS with the `ums` command against an
initialised instance whose relay is a real SMTP sink on loopback: templates,
suppressions, a one-off send, campaigns created from a file and scheduled,
watched, paused, resumed and cancelled, the queue, CDR exports and billing."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from zoneinfo import ZoneInfo

from lxml import etree

from tests.acceptance.cli import running, ums
from tests.acceptance.relay import Recorder, sink, wait_for  # noqa: F401 (sink is a fixture)
from ums.cdr import CSV_COLUMNS
from ums.clock import utcnow

SEOUL = ZoneInfo("Asia/Seoul")


def ok(home: Path, *args: str, timeout: float = 60) -> str:
    result = ums(home, *args, timeout=timeout)
    assert result.returncode == 0, f"ums {' '.join(args)}: {result.stderr}"
    return result.stdout


def write_files(home: Path) -> None:
    (home / "notice.json").write_text(json.dumps({
        "name": "notice", "channel": "email", "kind": "transactional",
        "subject": "{{ name }}님, 안내드립니다", "body_text": "{{ name }}님, 명세서가 발송되었습니다.",
    }, ensure_ascii=False))
    (home / "customers.csv").write_text("email,name,grade\n" + "".join(
        f"user{n}@example.com,고객{n},VIP\n" for n in range(30)
    ) + "blocked@example.com,차단,VIP\n")
    (home / "statement.json").write_text(json.dumps({
        "name": "statement", "kind": "transactional", "template": "notice",
        "audience": {"csv": "customers.csv"}, "created_by": "finance",
    }))
    # throttled to 1 a second, so its 31 take half a minute: `ums campaign pause`, then
    # `resume` and `cancel` land while it still sends even when the machine is busy and
    # each `ums` takes seconds (at 4 a second it had ended first)
    (home / "slow.json").write_text(json.dumps({
        "name": "slow", "kind": "transactional", "template": "notice",
        "audience": {"books": ["campaign:statement"]}, "throttle": {"rate": 1}, "created_by": "marketing",
    }))


def test_operator_runs_pass_entirely_from_the_command_line(tmp_path, sink):
    port, recorder = sink
    home = tmp_path
    (home / "ums.cfg").write_text(
        f"[email]\nrelay_port = {port}\nconnections = 4\n"
        "[pass]\npoll_interval = 0.2\nwrite_interval = 0.02\n[control]\npoll_interval = 0.2\n"
    )
    write_files(home)
    ok(home, "init")
    assert "template 'notice' (email) saved" in ok(home, "template", "add", "notice.json")

    # suppression list: add, list, remove
    ok(home, "suppress", "add", "blocked@example.com", "--detail", "asked by phone")
    ok(home, "suppress", "add", "typo@example.com")
    listed = ok(home, "suppress", "list")
    assert "blocked@example.com" in listed and "typo@example.com" in listed
    ok(home, "suppress", "remove", "typo@example.com")
    listed = ok(home, "suppress", "list")
    assert "blocked@example.com" in listed and "typo@example.com" not in listed
    refused = ums(home, "send", "--to", "not-an-address", "--template", "notice")
    assert refused.returncode == 1 and "not a valid email address" in refused.stderr

    # campaigns from files: drafts until scheduled
    assert "campaign 1 'statement' created (draft)" in ok(home, "campaign", "create", "statement.json")
    assert "(draft)" in ok(home, "campaign", "create", "slow.json")
    listed = ok(home, "campaign", "list")
    assert "statement" in listed and "slow" in listed and "draft" in listed

    with running(home, "pass"):
        # a one-off send
        assert "queued" in ok(home, "send", "--to", "single@example.com", "--template", "notice",
                              "--var", "name=홍길동")
        wait_for(lambda: "single@example.com" in recorder.recipients())

        # schedule and watch: the watch ends by itself when the campaign completes
        assert "scheduled" in ok(home, "campaign", "schedule", "statement")
        watched = ok(home, "campaign", "watch", "statement", "--interval", "0.2", timeout=60)
        assert "statement (completed)" in watched and "sent 30" in watched
        shown = ok(home, "campaign", "show", "statement")
        assert "completed" in shown and "sent: 30" in shown and "suppressed: 1" in shown
        assert "blocked@example.com" not in recorder.recipients()

        # pause stops the throttled campaign, resume continues, cancel ends the rest
        ok(home, "campaign", "schedule", "slow")
        wait_for(lambda: _sent_of(recorder) >= 3)
        ok(home, "campaign", "pause", "slow")
        time.sleep(1.5)
        paused_at = _sent_of(recorder)
        time.sleep(1.5)
        assert _sent_of(recorder) == paused_at
        assert "paused" in ok(home, "campaign", "show", "slow")
        ok(home, "campaign", "resume", "slow")
        wait_for(lambda: _sent_of(recorder) >= paused_at + 2)
        cancelled = ok(home, "campaign", "cancel", "slow")
        assert "cancelled" in cancelled
        shown = wait_for(lambda: (out := ok(home, "campaign", "show", "slow")) and "sending" not in out and out)
        counts = _counts(shown)
        assert counts["sent"] + counts["cancelled"] + counts.get("suppressed", 0) == 31
        assert counts["cancelled"] > 0 and counts["sent"] == _sent_of(recorder)

        stats = ok(home, "queue", "stats")
        assert "sent" in stats and "cancelled" in stats and "suppressed" in stats

    # every attempt has a CDR row; both export formats agree
    today = utcnow().astimezone(SEOUL).date().isoformat()
    exported = ok(home, "cdr", "export", "--since", today, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert tuple(rows[0]) == CSV_COLUMNS
    delivered = [row for row in rows if row["disposition"] == "ANSWERED"]
    assert len(delivered) == len(recorder.received)
    xml = etree.fromstring(ok(home, "cdr", "export", "--since", today, "--format", "xml").encode())
    assert len(xml) == len(rows)

    # billing: delivered messages times the email rate (1.5 KRW)
    report = ok(home, "billing", "report", "--period", today[:7], "--by", "campaign")
    lines = {line.split()[0]: line.split()[1:] for line in report.splitlines()[1:] if line.strip()}
    assert lines["statement"] == ["31", "30", "0", "0", "45.00"]     # 30 delivered × 1.5, 1 suppressed
    assert lines["cli"][-1] == "1.50"
    assert lines["TOTAL"][-1] == f"{len(recorder.received) * 1.5:.2f}"
    by_account = ok(home, "billing", "report", "--period", today[:7], "--by", "account")
    assert "finance" in by_account and "marketing" in by_account


def _sent_of(recorder: Recorder) -> int:
    """Messages of the 'slow' campaign: its recipients are the statement audience again."""
    return sum(1 for rcpt in recorder.recipients() if rcpt.startswith("user")) - 30


def _counts(shown: str) -> dict[str, int]:
    counts = {}
    for line in shown.splitlines():
        key, _, value = line.strip().partition(": ")
        if key in ("sent", "cancelled", "suppressed", "queued", "sending", "failed") and value.isdigit():
            counts[key] = int(value)
    return counts
