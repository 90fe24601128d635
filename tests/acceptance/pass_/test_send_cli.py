"""`ums send --template` as an operator types it, with `ums run pass` in a child
process relaying to a real SMTP sink on loopback: an advertising template is
sent as advertising (consent, the 21:00–08:00 rule, the `(광고)` label), never
as transactional; `--at` is read in `[ums] timezone` and a past one is
refused; and every file in config/samples/ loads in a fresh instance as the
README says, whatever the date.

The hour is chosen with ``UMS_CLOCK_SHIFT`` (see :mod:`ums.clock`): the session
runs at noon in Seoul; a night test sets 03:30 for every `ums` process it
starts (the server and the clients alike)."""

from __future__ import annotations

import re
import sqlite3
from datetime import datetime, time as clock_time, timedelta, timezone
from email import message_from_bytes, policy
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.acceptance.cli import running, ums
from tests.acceptance.relay import sink, wait_for  # noqa: F401 (sink is a fixture)
from ums.clock import SHIFT_VARIABLE, shift_to, utcnow
from ums.config import SHIPPED_CONFIG_DIR

SEOUL = ZoneInfo("Asia/Seoul")
SAMPLES = SHIPPED_CONFIG_DIR / "samples"
OFFER = "monthly-offer"                        # the advertising template of config/samples/template-offer.json
STRANGER = "stranger@example.com"              # no contact, no consent
DAYTIME = "daytime@example.com"                # advertising consent, but not at night


# --- helpers ----------------------------------------------------------------------------------

def ok(home: Path, *args: str) -> str:
    """`ums ARGS…`'s stdout; the test fails with its stderr unless it exits 0."""
    result = ums(home, *args)
    assert result.returncode == 0, f"ums {' '.join(args)}: {result.stderr}"
    return result.stdout


def refused(home: Path, *args: str) -> str:
    """`ums ARGS…` must fail with exactly one line on stderr; returns that line."""
    result = ums(home, *args)
    assert result.returncode != 0, f"ums {' '.join(args)} was accepted: {result.stdout}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"not one line: {result.stderr}"
    return lines[0]


def at_seoul_time(monkeypatch, local: clock_time) -> datetime:
    """Shift the clock of every `ums` process this test starts to the nearest
    ``local`` time in Seoul; returns that moment (aware UTC)."""
    shift = shift_to(local, SEOUL)
    monkeypatch.setenv(SHIFT_VARIABLE, str(shift))
    return datetime.now(timezone.utc) + timedelta(seconds=shift)


def fresh_instance(home: Path, relay_port: int | None = None) -> None:
    """`ums init` in ``home`` (relaying to ``relay_port``), the sample advertising
    template, and the contacts: DAYTIME consented a month ago, not at night."""
    relay = f"[email]\nrelay_port = {relay_port}\nconnections = 2\n" if relay_port else ""
    (home / "ums.cfg").write_text(
        relay + "[pass]\npoll_interval = 0.2\nwrite_interval = 0.02\n[control]\npoll_interval = 0.2\n")
    ok(home, "init")
    ok(home, "template", "add", str(SAMPLES / "template-offer.json"))
    consented = (utcnow() - timedelta(days=30)).date().isoformat()
    (home / "contacts.csv").write_text(
        "email,name,consent,consent_source,consent_date,night_time\n"
        f"{DAYTIME},김낮,yes,web form,{consented},no\n", encoding="utf-8")
    assert "1 added" in ok(home, "contacts", "import", "contacts.csv")


def send(home: Path, to: str, *extra: str) -> int:
    """`ums send --to TO --template monthly-offer …`; the queued delivery's id."""
    out = ok(home, "send", "--to", to, "--template", OFFER, "--var", "name=홍길동", *extra)
    found = re.search(r"delivery (\d+) queued \(advertising\)", out)
    assert found, out
    return int(found.group(1))


def delivery(home: Path, delivery_id: int) -> dict:
    """The delivery row as PASS left it (read straight from the instance's SQLite file)."""
    with sqlite3.connect(home / "var" / "ums.db") as db:
        db.row_factory = sqlite3.Row
        row = db.execute("select * from deliveries where id = ?", (delivery_id,)).fetchone()
    return dict(row)


def as_utc(stored: str) -> datetime:
    """A time stored by SQLite (naive UTC text) as aware UTC."""
    return datetime.fromisoformat(stored).replace(tzinfo=timezone.utc)


def subject_of(data: bytes) -> str:
    """The Subject header, RFC 2047 decoded."""
    return str(message_from_bytes(data, policy=policy.default)["Subject"])


# --- (a), (b): at 03:30 in Seoul nothing advertising is relayed -------------------------------

def test_at_night_advertising_to_a_stranger_ends_suppressed_and_is_never_relayed(tmp_path, sink, monkeypatch):
    port, recorder = sink
    at_seoul_time(monkeypatch, clock_time(3, 30))
    fresh_instance(tmp_path, port)
    with running(tmp_path, "pass"):
        stranger = send(tmp_path, STRANGER)
        row = wait_for(lambda: (row := delivery(tmp_path, stranger))["state"] == "suppressed" and row)
    assert row["kind"] == "advertising"
    assert row["last_error"] == "no advertising consent"
    assert recorder.messages() == []


def test_at_night_advertising_to_a_daytime_consenter_waits_for_eight(tmp_path, sink, monkeypatch):
    port, recorder = sink
    night = at_seoul_time(monkeypatch, clock_time(3, 30))
    fresh_instance(tmp_path, port)
    with running(tmp_path, "pass"):
        consenter = send(tmp_path, DAYTIME)
        row = wait_for(lambda: (row := delivery(tmp_path, consenter))["state"] == "waiting" and row)
    morning = datetime.combine(night.astimezone(SEOUL).date(), clock_time(8, 0), tzinfo=SEOUL)
    assert as_utc(row["due_at"]) == morning                      # 08:00 KST the same morning
    assert row["kind"] == "advertising" and row["attempts"] == 0
    assert recorder.messages() == []


# --- (c): in the daytime the consenter gets it, labelled -------------------------------------

def test_in_the_daytime_the_consenter_gets_it_with_the_advertising_label(tmp_path, sink):
    port, recorder = sink
    fresh_instance(tmp_path, port)                              # the session clock: noon in Seoul
    with running(tmp_path, "pass"):
        consenter = send(tmp_path, DAYTIME)
        wait_for(lambda: recorder.messages())
        row = wait_for(lambda: (row := delivery(tmp_path, consenter))["state"] == "sent" and row)
    [(rcpt, data)] = recorder.messages()
    assert rcpt == DAYTIME and row["kind"] == "advertising"
    subject = subject_of(data)
    assert subject.startswith("(광고) ") and subject.count("(광고)") == 1
    assert "홍길동님께 드리는 이달의 혜택" in subject


# --- (d) and --at: refused in one line, nothing queued ----------------------------------------

def test_an_advertising_template_is_never_sent_as_transactional(tmp_path):
    fresh_instance(tmp_path)
    line = refused(tmp_path, "send", "--to", DAYTIME, "--template", OFFER, "--kind", "transactional")
    assert OFFER in line and "advertising" in line and "never sent as transactional" in line
    with sqlite3.connect(tmp_path / "var" / "ums.db") as db:
        assert db.execute("select count(*) from deliveries").fetchone() == (0,)
    send(tmp_path, DAYTIME, "--kind", "advertising")            # asking for what it is is fine


def test_at_is_read_in_the_site_zone_shown_with_it_and_a_past_one_is_refused(tmp_path):
    fresh_instance(tmp_path)
    day = (utcnow() + timedelta(days=3)).astimezone(SEOUL).date().isoformat()
    out = ok(tmp_path, "send", "--to", DAYTIME, "--template", OFFER, "--at", f"{day}T09:00")
    assert out.strip().endswith(f"for {day} 09:00 KST"), out
    delivery_id = int(re.search(r"delivery (\d+)", out).group(1))
    assert as_utc(delivery(tmp_path, delivery_id)["due_at"]) == datetime.fromisoformat(f"{day}T09:00+09:00")

    yesterday = (utcnow() - timedelta(days=1)).astimezone(SEOUL).strftime("%Y-%m-%dT%H:%M")
    line = refused(tmp_path, "send", "--to", DAYTIME, "--template", OFFER, "--at", yesterday)
    assert "in the past" in line and "KST" in line
    assert "ISO 8601" in refused(tmp_path, "send", "--to", DAYTIME, "--template", OFFER, "--at", "tomorrow")


# --- (e): the README's samples, at any date ---------------------------------------------------

def _load(home: Path, path: Path) -> str:
    """Load one sample file the way the README does; returns the command's output."""
    relative = path.relative_to(SAMPLES)
    if relative.parts[0] == "services":
        return ok(home, "service", "register", str(path))
    if path.name.startswith("template-"):
        return ok(home, "template", "add", str(path))
    if path.name.startswith("campaign-"):
        return ok(home, "campaign", "create", str(path), "--schedule")
    if path.name.startswith("journey-"):   # the same journey in JSON and XML: each in an instance of its own
        own = home / path.name
        own.mkdir()
        ok(own, "init")
        return ok(own, "journey", "create", str(path), "--by", "marketing")
    raise AssertionError(f"{relative}: not a sample the README explains how to load")


@pytest.mark.parametrize("years_ahead", [0, 5], ids=["today", "in-five-years"])
def test_every_sample_loads_in_a_fresh_instance_at_any_date(tmp_path, monkeypatch, years_ahead):
    monkeypatch.setenv(SHIFT_VARIABLE, str(shift_to(clock_time(12, 0), SEOUL) + years_ahead * 365 * 86400))
    ok(tmp_path, "init")
    samples = sorted(path for path in SAMPLES.rglob("*") if path.is_file())
    templates_first = sorted(samples, key=lambda path: not path.name.startswith("template-"))
    outputs = {path.name: _load(tmp_path, path) for path in templates_first}
    assert "template 'monthly-offer' (email) saved" in outputs["template-offer.json"]
    assert "'spring-savings' created, scheduled for" in outputs["campaign-spring.xml"]
    assert "(now)" in outputs["campaign-spring.xml"]            # no fixed time: --schedule starts it now
    assert re.search(r"scheduled for \d{4}-\d\d-01 09:00 KST", outputs["campaign-notice.json"])
    assert "registered large-deposit-alert" in outputs["large-deposit-alert.json"]
    assert "registered loan-due-notice" in outputs["loan-due-notice.xml"]
    assert "winback" in outputs["journey-winback.json"] and "winback" in outputs["journey-winback.xml"]
    # the README's one-off send of the sample template
    assert "queued (advertising)" in ok(tmp_path, "send", "--to", "someone@example.com",
                                        "--template", OFFER, "--var", "name=홍길동")
