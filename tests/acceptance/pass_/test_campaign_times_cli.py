"""Times as a marketer in Seoul types and reads them, through the `ums` command
on the embedded default (SQLite) with a real SMTP sink on loopback: start
times with `+09:00`, `Z` and no offset; pausing and resuming a campaign due
later; refusing a past start and rescheduling a missed one; CDR days and
billing months of Korea; and, at 03:30 in Seoul, why advertising waits.

Each test runs every `ums` process on one shifted application clock
(``UMS_CLOCK_SHIFT``), so it means the same at whatever hour it runs.
"""

from __future__ import annotations

import csv
import email
import email.policy
import io
import json
import sqlite3
import time
from datetime import datetime, time as clock_time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo


from tests.acceptance.cli import running, ums
from tests.acceptance.relay import sink, wait_for  # noqa: F401 (sink is a fixture)
from ums.clock import shift_to

SEOUL = ZoneInfo("Asia/Seoul")
UTC = timezone.utc


class Instance:
    """An initialised instance whose every command runs at one clock shift."""

    def __init__(self, home: Path, port: int, shift: float, **pass_settings):
        self.home, self.shift = home, shift
        extra = "".join(f"{key} = {value}\n" for key, value in pass_settings.items())
        (home / "ums.cfg").write_text(
            f"[email]\nrelay_port = {port}\nconnections = 4\n"
            f"[pass]\npoll_interval = 0.2\nwrite_interval = 0.02\n{extra}[control]\npoll_interval = 0.2\n"
        )
        self.ok("init")

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.shift)

    def run(self, *args: str, timeout: float = 60):
        return ums(self.home, *args, timeout=timeout, shift=self.shift)

    def ok(self, *args: str, timeout: float = 60) -> str:
        result = self.run(*args, timeout=timeout)
        assert result.returncode == 0, f"ums {' '.join(args)}: {result.stderr}"
        return result.stdout

    def running(self, *services: str):
        return running(self.home, *services, shift=self.shift)

    def rows(self, sql: str, *params) -> list[tuple]:
        with sqlite3.connect(self.home / "var" / "ums.db") as conn:
            return conn.execute(sql, params).fetchall()

    def campaign(self, name: str) -> dict:
        state, schedule_at, started_at = self.rows(
            "SELECT state, schedule_at, started_at FROM campaigns WHERE name = ?", name)[0]
        return {"state": state, "schedule_at": _utc(schedule_at), "started_at": _utc(started_at)}

    def add_offer_template(self) -> None:
        (self.home / "offer.json").write_text(json.dumps({
            "name": "offer", "channel": "email", "kind": "advertising", "subject": "{{ name }}님께 드리는 혜택",
            "body_text": "{{ name }}님, 이달의 혜택입니다.", "sender_name": "UMS은행", "sender_contact": "1588-0000",
        }, ensure_ascii=False))
        self.ok("template", "add", "offer.json")

    def import_people(self, rows: list[str], book: str = "people") -> None:
        """``ums contacts import`` of CSV ``rows`` (with their consents) into ``book``."""
        header = "email,name,customer_id,consent,consent_source,consent_date,night_time\n"
        (self.home / f"{book}.csv").write_text(header + "".join(f"{row}\n" for row in rows))
        self.ok("contacts", "import", f"{book}.csv", "--book", book)

    def write_campaign(self, name: str, book: str = "people", kind: str = "advertising",
                       at: str | None = None) -> Path:
        body = {"name": name, "kind": kind, "template": "offer", "audience": {"books": [book]}}
        if at:
            body["schedule"] = {"at": at}
        path = self.home / f"{name}.json"
        path.write_text(json.dumps(body))
        return path


def _utc(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text).replace(tzinfo=UTC) if text else None


def _consenting(count: int, prefix: str = "user", night: bool = False) -> list[str]:
    flag = "yes" if night else "no"
    return [f"{prefix}{n}@example.com,고객{n},{prefix.upper()}{n},yes,web,2026-06-01,{flag}" for n in range(count)]


def test_start_times_with_offset_z_and_none_start_on_time(tmp_path, sink):
    port, recorder = sink
    site = Instance(tmp_path, port, shift_to(clock_time(12, 0), SEOUL))
    site.add_offer_template()
    site.import_people(_consenting(2))
    start = (site.now() + timedelta(seconds=8)).replace(microsecond=0)
    written = {
        "kst": start.astimezone(SEOUL).isoformat(),                        # …+09:00
        "utc": start.strftime("%Y-%m-%dT%H:%M:%SZ"),                      # …Z
        "naive": start.astimezone(SEOUL).replace(tzinfo=None).isoformat(),  # read in [ums] timezone
    }
    with site.running("pass"):
        for label, text in written.items():
            created = site.ok("campaign", "create", str(site.write_campaign(label, at=text)),
                              "--schedule")
            assert f"scheduled for {start.astimezone(SEOUL):%Y-%m-%d %H:%M} KST" in created
        listed = site.ok("campaign", "list")
        assert listed.count(f"{start.astimezone(SEOUL):%Y-%m-%d %H:%M} KST") == 3
        for label in written:
            assert site.campaign(label)["schedule_at"] == start, label
        for label in written:
            started = wait_for(lambda: site.campaign(label)["started_at"], timeout=30)
            assert timedelta(0) <= started - start < timedelta(seconds=3), (label, started, start)
        wait_for(lambda: len(recorder.received) == 6, timeout=30)


def test_pausing_and_resuming_a_campaign_due_in_two_days_sends_nothing(tmp_path, sink):
    port, recorder = sink
    site = Instance(tmp_path, port, shift_to(clock_time(12, 0), SEOUL))
    site.add_offer_template()
    site.import_people(_consenting(3))
    due = (site.now() + timedelta(days=2)).replace(second=0, microsecond=0)
    site.ok("campaign", "create", str(site.write_campaign("later", at=due.isoformat())), "--schedule")
    with site.running("pass"):
        assert "paused" in site.ok("campaign", "pause", "later")
        resumed = site.ok("campaign", "resume", "later")
        assert f"scheduled for {due.astimezone(SEOUL):%Y-%m-%d %H:%M} KST (in 1 d 23 h)" in resumed
        time.sleep(2)   # PASS polls several times a second: it would have started it by now
        assert site.campaign("later") == {"state": "scheduled", "schedule_at": due, "started_at": None}
        assert site.rows("SELECT count(*) FROM deliveries")[0][0] == 0
        shown = site.ok("campaign", "show", "later")
        assert "state: scheduled" in shown and "starts" in shown and "KST" in shown
    assert recorder.received == []


def test_a_past_start_is_refused_and_a_missed_campaign_is_rescheduled(tmp_path, sink):
    port, recorder = sink
    site = Instance(tmp_path, port, shift_to(clock_time(12, 0), SEOUL), misfire_grace=1)
    site.add_offer_template()
    site.import_people(_consenting(2))
    past = (site.now() - timedelta(hours=1)).astimezone(SEOUL).isoformat(timespec="minutes")
    refused = site.run("campaign", "create", str(site.write_campaign("old", at=past)), "--schedule")
    assert refused.returncode != 0
    assert refused.stderr.strip().count("\n") == 0 and "in the past" in refused.stderr, refused.stderr
    assert site.rows("SELECT count(*) FROM campaigns")[0][0] == 0   # nothing half-created

    # scheduled while PASS is down, missed past the grace, then rescheduled
    soon = (site.now() + timedelta(seconds=1)).isoformat()
    site.ok("campaign", "create", str(site.write_campaign("missed-one", at=soon)), "--schedule")
    time.sleep(3)
    with site.running("pass") as server:
        wait_for(lambda: site.campaign("missed-one")["state"] == "missed")
        again = site.run("campaign", "schedule", "missed-one", "--now")
        assert again.returncode != 0 and "missed" in again.stderr
        assert "rescheduled" in site.ok("campaign", "reschedule", "missed-one", "--now")
        wait_for(lambda: site.campaign("missed-one")["state"] == "completed", timeout=30)
        assert sorted(rcpt for rcpt, _ in recorder.received) == ["user0@example.com", "user1@example.com"]
    log = server.stdout.read()
    assert "campaign start missed: PASS was not running at its time" in log and "reschedule" in log


def test_cdr_days_and_billing_months_are_korean(tmp_path, sink):
    """A send at 23:30 UTC on the last day of a month is the next day — and the
    next month — in Seoul, and the exports and reports say so."""
    port, recorder = sink
    now = datetime.now(UTC)
    moment = datetime(now.year, now.month, 1, tzinfo=UTC) - timedelta(minutes=30)   # 23:30 on a month's last day
    site = Instance(tmp_path, port, (moment - now).total_seconds())
    (tmp_path / "notice.json").write_text(json.dumps({
        "name": "notice", "channel": "email", "kind": "transactional", "subject": "안내", "body_text": "안내드립니다."}))
    site.ok("template", "add", "notice.json")
    with site.running("pass"):
        site.ok("send", "--to", "someone@example.com", "--template", "notice")
        wait_for(lambda: len(recorder.received) == 1)
    korean_day = moment.astimezone(SEOUL).date()
    assert korean_day != moment.date()
    exported = list(csv.DictReader(io.StringIO(site.ok("cdr", "export", "--since", korean_day.isoformat()))))
    assert [row["dst"] for row in exported] == ["someone@example.com"]
    before = site.ok("cdr", "export", "--since", moment.date().isoformat())
    assert "someone@example.com" not in before
    assert (tmp_path / "var" / "cdr" / f"{korean_day}.csv").exists()

    korean_month, utc_month = f"{korean_day:%Y-%m}", f"{moment:%Y-%m}"
    assert korean_month != utc_month
    report = site.ok("billing", "report", "--period", korean_month, "--by", "channel")
    assert _billing_total(report) == "1.50"
    assert _billing_total(site.ok("billing", "report", "--period", utc_month, "--by", "channel")) == "0.00"


def _billing_total(report: str) -> str:
    return [line.split()[-1] for line in report.splitlines() if line.strip().startswith("TOTAL")][0]


def test_at_half_past_three_in_seoul_advertising_says_why_it_waits(tmp_path, sink):
    port, recorder = sink
    site = Instance(tmp_path, port, shift_to(clock_time(3, 30), SEOUL))
    assert site.now().astimezone(SEOUL).hour == 3
    site.add_offer_template()
    rows = (_consenting(5, "day") + _consenting(2, "night", night=True)
            + [f"stranger{n}@example.com,모르는분{n},S{n},,,," for n in range(3)])
    site.import_people(rows, "mixed")
    site.ok("campaign", "create", str(site.write_campaign("winter", "mixed")), "--schedule")
    with site.running("pass"):
        wait_for(lambda: len(recorder.received) == 2 and _settled(site), timeout=30)
        assert sorted(rcpt for rcpt, _ in recorder.received) == ["night0@example.com", "night1@example.com"]
        expected = "5 waiting: night-time rule (21:00–08:00), next send 08:00 KST (in 4 h 29 m)"

        shown = site.ok("campaign", "show", "winter")
        assert _one_of(expected, shown), shown
        watched = site.ok("campaign", "watch", "winter", "--once")
        assert "sent 2 failed 0 suppressed 3 waiting 5" in watched
        assert "5/10 done" in watched and _one_of(expected, watched), watched
        stats = site.ok("queue", "stats")
        assert _one_of(expected, stats), stats
        customer = site.ok("customer", "show", "DAY0")
        assert "night-time rule" in customer and "08:00 KST" in customer
    subjects = [_subject(data) for _, data in recorder.received]
    assert all(subject.startswith("(광고)") for subject in subjects), subjects


def _subject(data: bytes) -> str:
    return str(email.message_from_bytes(data, policy=email.policy.default)["Subject"])


def _settled(site: Instance) -> bool:
    """Nothing of the campaign is being sent or waits to be looked at."""
    states = dict(site.rows("SELECT state, count(*) FROM deliveries GROUP BY state"))
    return states.get("waiting") == 5 and states.get("suppressed") == 3 and not states.get("sending") \
        and not states.get("queued")


def _one_of(expected: str, text: str) -> bool:
    """``expected`` in ``text``, allowing the countdown to have moved by a minute."""
    countdowns = ["4 h 29 m", "4 h 30 m", "4 h 28 m"]
    return any(expected.replace("4 h 29 m", countdown) in text for countdown in countdowns)
