"""Bounces as UMS reads them (:mod:`ums.bounces`), on a real-world corpus and on
the cases that used to go wrong.

The corpus is the test data of GNU Mailman's flufl.bounce (117 messages from
many MTAs), fetched from PyPI with pip at the first run into
``~/.cache/ums-test`` (reused after); the messages are not committed, only
our expectation of each: ``tests/data/bounce_corpus.json``. Without network
the corpus test skips outside CI and fails in CI (``CI=true``).
"""

from __future__ import annotations

import email
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from email.policy import compat32
from importlib.metadata import version
from pathlib import Path

import pytest

from mas.classify import Keywords, classify
from ums.inbound import InboundMessage
from ums import bounces

EXPECTED = Path(__file__).resolve().parents[2] / "data" / "bounce_corpus.json"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ums-test"


def _download_corpus(target: Path) -> None:
    """flufl.bounce's sdist (the version installed) from PyPI; its tests/data/*.txt into ``target``."""
    wanted = version("flufl.bounce")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch, tempfile.TemporaryDirectory(dir=target.parent) as staging:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
             f"flufl.bounce=={wanted}", "--dest", scratch],
            check=True, capture_output=True, timeout=300,
        )
        [sdist] = Path(scratch).glob("*.tar.gz")
        data = Path(staging) / "data"
        data.mkdir()
        with tarfile.open(sdist) as archive:
            for member in archive.getmembers():
                parts = Path(member.name).parts
                if member.isfile() and parts[-3:-1] == ("tests", "data") and member.name.endswith(".txt"):
                    (data / parts[-1]).write_bytes(archive.extractfile(member).read())
        data.rename(target)  # complete or not there: a run cut short leaves nothing half-written


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The directory of flufl.bounce's test messages."""
    target = CACHE / f"flufl.bounce-{version('flufl.bounce')}-data"
    if not target.is_dir():
        try:
            _download_corpus(target)
        except (subprocess.SubprocessError, OSError, ValueError) as exc:
            detail = getattr(exc, "stderr", b"") or b""
            reason = f"cannot fetch flufl.bounce's sdist from PyPI: {exc} {detail.decode(errors='replace')[-300:]}"
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail(reason)
            pytest.skip(reason)
    return target


def parsed(raw: bytes):
    return email.message_from_bytes(raw, policy=compat32)


def test_the_real_world_corpus_is_read_right(corpus, capsys):
    expected = json.loads(EXPECTED.read_text())["expected"]
    assert sorted(expected) == sorted(p.name for p in corpus.glob("*.txt")), "the corpus changed"
    wrong, bounced = {}, 0
    for name, want in sorted(expected.items()):
        message = parsed((corpus / name).read_bytes())
        got = {failure.address: failure.kind for failure in bounces.read(message).failures}
        if want is None:  # not a bounce (a reply, an auto-reply): nothing may be read from it
            assert got == {} and not bounces.is_bounce(message, None), name
            continue
        bounced += 1
        if got != want:
            wrong[name] = {"want": want, "got": got}
    right = bounced - len(wrong)
    with capsys.disabled():
        print(f"\nbounce corpus: {right} of {bounced} right", *(f"\n  wrong: {n} {w}" for n, w in wrong.items()))
    assert bounced >= 115
    assert right >= 0.98 * bounced, wrong


def test_a_gmail_spam_block_in_the_corpus_suppresses_nobody(corpus):
    [failure] = bounces.read(parsed((corpus / "simple_42.txt").read_bytes())).failures
    assert (failure.kind, failure.status) == (bounces.IGNORED, "5.7.1")
    assert "unsolicited mail" in failure.reason


# --- the cases that went wrong --------------------------------------------------------

QMAIL_WITH_A_PHONE_NUMBER = b"""\
From: MAILER-DAEMON@mx.example.net
To: bounce@ums.local
Subject: failure notice

Hi. This is the qmail-send program at mx.example.net.
Your mail message to the following address(es) could not be delivered. This
is a permanent error. Please verify the addresses and try again. If you are
still having difficulty sending mail to these addresses, please contact
Customer Support at 480-624-2500.

<user@example.net>:
child status 100...The e-mail message could not be delivered because the user's mailfolder is full.

--- Below this line is a copy of the message.

Message-ID: <abc@ums.local>
Subject: hello
"""


def dsn(blocks: str, diagnostic_text: str = "") -> bytes:
    return f"""\
From: MAILER-DAEMON@mx.example.org
To: bounce@ums.local
Subject: Delivery Status Notification (Failure)
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

{diagnostic_text or "Your message could not be delivered."}

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.org

{blocks}

--B
Content-Type: text/rfc822-headers

Message-ID: <sent-1@ums.local>
Subject: monthly news

--B--
""".encode()


def test_a_phone_number_is_no_status():
    [failure] = bounces.read(parsed(QMAIL_WITH_A_PHONE_NUMBER)).failures
    assert (failure.address, failure.kind, failure.status) == ("user@example.net", "permanent", "5.0.0")


def test_dotted_numbers_that_are_no_smtp_reply_are_no_status():
    assert bounces.reply_status("Content Technologies SMTPRS 4.3.17 and version 4.7.1.128075") == ""
    assert bounces.reply_status("call 480-624-2500 or 452-555-0100") == ""
    assert bounces.reply_status("host mx said: 452 4.2.2 mailbox full") == "4.2.2"
    assert bounces.reply_status("550-5.1.1 The email account does not exist") == "5.1.1"
    assert bounces.reply_status("Diagnostic-Code: smtp; 554 transaction failed") == "5.0.0"
    assert bounces.reply_status("Sorry, no mailbox here by that name. (#5.1.1)") == "5.1.1"


def test_action_failed_is_permanent_whatever_the_status_class():
    raw = dsn("Final-Recipient: rfc822; lee@example.org\nAction: failed\nStatus: 4.4.7\n"
              "Diagnostic-Code: smtp; 421 4.4.7 delivery time expired")
    [failure] = bounces.read(parsed(raw)).failures
    assert (failure.kind, failure.status) == ("permanent", "4.4.7")


def test_action_delayed_is_temporary():
    raw = dsn("Final-Recipient: rfc822; lee@example.org\nAction: delayed\nStatus: 4.2.2")
    [failure] = bounces.read(parsed(raw)).failures
    assert (failure.kind, failure.status) == ("temporary", "4.2.2")


def test_an_rfc822_original_recipient_wins_and_x400_is_no_address():
    raw = dsn("Original-Recipient: rfc822; kim@bank.example\nFinal-Recipient: rfc822; k.kim@mailhost.internal\n"
              "Action: failed\nStatus: 5.1.1\n\n"
              "Original-Recipient: x400; /S=park/OU=bank/C=KR/\nFinal-Recipient: rfc822; park@bank.example\n"
              "Action: failed\nStatus: 5.1.1\n\n"
              "Final-Recipient: x400; /S=choi/OU=bank/PRMD=KR/ADMD= /C=KR/\nAction: failed\nStatus: 5.1.1")
    assert [f.address for f in bounces.read(parsed(raw)).failures] == ["kim@bank.example", "park@bank.example"]


def test_a_generic_status_takes_the_detail_of_the_smtp_reply():
    raw = dsn("Final-Recipient: rfc822; lee@example.org\nAction: failed\nStatus: 5.0.0\n"
              "Diagnostic-Code: smtp; 550 5.1.1 <lee@example.org>: user unknown")
    [failure] = bounces.read(parsed(raw)).failures
    assert (failure.status, failure.reason) == ("5.1.1", "550 5.1.1 <lee@example.org>: user unknown")


@pytest.mark.parametrize("diagnostic", [
    "550-5.7.1 [203.0.113.5] Our system has detected that this message is\n 550-5.7.1 likely unsolicited mail."
    " To reduce the amount of spam sent to Gmail,\n 550 5.7.1 this message has been blocked.",
    "550 5.7.26 This mail has been blocked because the sender is unauthenticated. Gmail requires all senders"
    " to authenticate with either SPF or DKIM. DMARC check failed",
    "554 5.7.1 Service unavailable; Client host [203.0.113.5] blocked using zen.spamhaus.org",
    "550 5.7.1 Message rejected due to content restrictions (policy)",
    "421 4.7.28 Our system has detected an unusual rate of unsolicited mail originating from your IP address",
])
def test_blocks_of_the_sender_suppress_nobody(diagnostic):
    action = "delayed" if diagnostic.startswith("4") else "failed"
    raw = dsn(f"Final-Recipient: rfc822; lee@gmail.com\nAction: {action}\nStatus: {diagnostic.split()[1]}\n"
              f"Diagnostic-Code: smtp; {diagnostic}")
    found = bounces.read(parsed(raw))
    assert [f.kind for f in found.failures] == ["ignored"]
    assert found.by_kind()["ignored"][0]["address"] == "lee@gmail.com"
    assert found.by_kind()["permanent"] == found.by_kind()["temporary"] == []


def test_a_block_told_only_in_the_report_text_suppresses_nobody():
    raw = dsn("Final-Recipient: rfc822; lee@example.org\nAction: failed\nStatus: 5.7.1",
              "Your message was blocked: our filters consider it spam.")
    assert [f.kind for f in bounces.read(parsed(raw)).failures] == ["ignored"]


@pytest.mark.parametrize("diagnostic", [
    "550 5.7.1 <lee@example.org>: Recipient address rejected: Access denied",
    "550 5.1.1 The email account that you tried to reach does not exist",
])
def test_a_refused_recipient_is_permanent(diagnostic):
    raw = dsn(f"Final-Recipient: rfc822; lee@example.org\nAction: failed\nStatus: 5.0.0\n"
              f"Diagnostic-Code: smtp; {diagnostic}")
    assert [f.kind for f in bounces.read(parsed(raw)).failures] == ["permanent"]


def test_a_bounce_with_auto_submitted_files_as_a_bounce():
    raw = dsn("Final-Recipient: rfc822; lee@example.org\nAction: failed\nStatus: 5.1.1")
    message = InboundMessage(raw.replace(b"\n", b"\r\n"), envelope_from="")
    assert message.header("auto-submitted") == "auto-replied"
    kind = classify(message, "bounce@ums.local", Keywords([]), 5)
    assert (kind.kind, kind.folder) == ("bounce", "Bounces")
    assert kind.bounce.original_message_id == "<sent-1@ums.local>"
