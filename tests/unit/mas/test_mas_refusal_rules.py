"""Refusal rules in process: stop keywords match whole words (and bare ones only
alone), MIME is walked without recursion, the envelope rules, and PASS's
suppression rule honouring an entry's scope."""

from __future__ import annotations

import importlib
import sys

import pytest

from mas import envelope
from mas.classify import Keywords, classify
from ums.inbound import InboundMessage, TooDeep, depth, parse, walk
from ums import config as ums_config

from tests.unit.mas import mas_samples as samples


@pytest.fixture(scope="module")
def keywords() -> Keywords:
    """The shipped ``[mas] refusal_keywords`` and ``refusal_bare_keywords``."""
    cfg = ums_config.load(ums_config.PROJECT_DIR, config_file=ums_config.DEFAULTS_FILE).section("mas")
    return Keywords.from_text(cfg["refusal_keywords"], cfg["refusal_bare_keywords"])


REFUSALS = [
    ("Re: 광고 수신거부 합니다", "", "수신거부"),
    ("광고수신거부합니다", "", "수신거부"),
    ("Re: (광고) 이달의 혜택", "무료수신거부\n감사합니다", "무료수신거부"),
    ("please UNSUBSCRIBE me", "", "unsubscribe"),
    ("Re: offer", "Unsubscribe.", "unsubscribe"),
    ("Re: offer", "please opt-out me now", "opt out"),  # spaces and hyphens inside a keyword are alike
    ("Re: offer", "Please OPT  OUT", "opt out"),
    ("STOP", "", "stop"),
    ("Re: STOP", "", "stop"),
    ("Re: your offer", "Stop!\n\nSent from my phone", "stop"),
    ("Re: 혜택", "거부", "거부"),
    ("ｕｎｓｕｂｓｃｒｉｂｅ", "", "unsubscribe"),  # full-width letters, NFKC
]
NOT_REFUSALS = [
    ("Re: 대출 상담", "I never unsubscribed, why do I get no statements?"),
    ("Re: unsubscribed?", "I was unsubscribed by mistake"),
    ("Re: 카드 분실", "Please stop my card, it was stolen."),
    ("Stop payment on cheque 123", ""),
    ("Re: offer", "nonstop service, thank you"),
    ("Re: 문의", "거부감이 있네요 할인율이 낮아서"),
    ("Re: question", "unsubscriber list"),
]


@pytest.mark.parametrize("subject,body,keyword", REFUSALS)
def test_refusals_are_found(keywords, subject, body, keyword):
    assert keywords.find(subject, body.splitlines()) == keyword


@pytest.mark.parametrize("subject,body", NOT_REFUSALS)
def test_words_that_only_contain_a_keyword_are_not_refusals(keywords, subject, body):
    assert keywords.find(subject, body.splitlines()) is None


def test_classify_reads_the_first_body_lines_only(keywords):
    body = "\n".join(["hello"] * 5 + ["unsubscribe"]) + "\n"
    message = InboundMessage(samples.text_message("a@customer.example", "news@ums.local", "Re: hi", body))
    assert classify(message, "news@ums.local", keywords, 5).kind == "reply"
    assert classify(message, "news@ums.local", keywords, 6).kind == "refusal"


def test_mime_is_walked_without_recursion_and_depth_is_capped():
    deep = parse(samples.nested_multipart(99))
    limit = sys.getrecursionlimit()
    try:
        sys.setrecursionlimit(60)  # far less than the nesting: walk and depth must not recurse
        assert depth(deep) == 100
        assert sum(1 for _ in walk(deep)) == 100
    finally:
        sys.setrecursionlimit(limit)
    assert [p.get_content_type() for p in walk(deep)] == [p.get_content_type() for p in deep.walk()]
    with pytest.raises(TooDeep) as refused:
        InboundMessage(samples.nested_multipart(100))
    assert refused.value.reply == "554 5.6.0 Message refused: its MIME parts nest more than 100 levels deep."
    with pytest.raises(TooDeep):
        InboundMessage(samples.nested_multipart(5000))  # deeper than the parser itself can go
    assert depth(InboundMessage(samples.nested_multipart(3), ).message) == 4
    with pytest.raises(TooDeep):
        InboundMessage(samples.nested_multipart(3), max_depth=3)


@pytest.mark.parametrize("argument,reply", [
    ("FROM:<a@b.example>", None),
    ("FROM:<홍@b.example> SMTPUTF8", None),
    ("TO:<\udcc8\udcab@b.example>", envelope.NOT_UTF8_REPLY),
    ("TO:<a\x00@b.example>", envelope.CONTROL_REPLY),
    ("TO:<a@b.example>\r", envelope.CONTROL_REPLY),
    ("FROM:<a@b.example>\tSIZE=10", None),
])
def test_envelope_argument_rules(argument, reply):
    assert envelope.argument_reply(argument) == reply


def test_envelope_recipient_rules():
    domains = ("ums.local", "bank.example")
    assert envelope.canonical_recipient("PostMaster", domains) == "postmaster@ums.local"
    assert envelope.canonical_recipient("postmaster@bank.example", domains) == "postmaster@bank.example"
    assert envelope.canonical_recipient("postmasters", domains) == "postmasters"
    assert envelope.is_postmaster("Postmaster@BANK.example", domains)
    assert envelope.is_duplicate("Sales@Bank.Example", ["sales@bank.example"])
    assert envelope.recipient_limit_reply(["x"] * 99, 100) is None
    assert envelope.recipient_limit_reply(["x"] * 100, 100) == "452 4.5.3 Too many recipients"
    assert envelope.utf8_reply("홍@b.example", smtputf8=False).startswith("553 5.6.7")
    assert envelope.utf8_reply("홍@b.example", smtputf8=True) is None


def test_pass_suppression_rule_honours_the_scope():
    policy = importlib.import_module("pass.policy")
    from datetime import datetime, timedelta, timezone

    ctx = policy.Context(datetime.now(timezone.utc), "Asia/Seoul", timedelta(hours=1))

    def decide(kind: str, scope: str | None):
        row = {"kind": kind, "channel": "email", "recipient": "kim@customer.example"}
        candidate = policy.Candidate(row=row, campaign=None, contact=None, suppressed=scope is not None,
                                     suppression_scope=scope or "all")
        return policy.suppression(candidate, ctx)

    assert decide("transactional", "advertising") is None           # the large-deposit alert still goes
    refused = decide("advertising", "advertising")
    assert (refused.state, refused.reason) == ("suppressed", "address refused advertising")
    assert decide("transactional", "all").state == "suppressed"     # a bounce or an operator's entry
    assert decide("advertising", "all").state == "suppressed"
    assert decide("transactional", None) is None


def test_only_failures_that_clear_are_451():
    from sqlalchemy.exc import DBAPIError, OperationalError

    from mas.handler import DEFERRED_REPLY, UNPROCESSABLE_REPLY, failure_reply

    class DriverError(Exception):
        def __init__(self, sqlstate):
            self.sqlstate = sqlstate

    assert failure_reply(OperationalError("SELECT 1", {}, ConnectionRefusedError())) == DEFERRED_REPLY
    assert failure_reply(ConnectionResetError()) == DEFERRED_REPLY
    assert failure_reply(DBAPIError("INSERT", {}, DriverError("08006"))) == DEFERRED_REPLY  # connection failure
    assert failure_reply(DBAPIError("INSERT", {}, DriverError("22021"))) == UNPROCESSABLE_REPLY  # bad text
    assert failure_reply(RecursionError()) == UNPROCESSABLE_REPLY
    assert failure_reply(ValueError("bug or bad input")) == UNPROCESSABLE_REPLY
    assert failure_reply(TooDeep(limit=3)).startswith("554 5.6.0 ")
