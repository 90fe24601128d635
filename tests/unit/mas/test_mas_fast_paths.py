"""Guards: a chain skips only scripts that could not have acted, so its verdicts
equal those of running every script; the fast envelope-address reader agrees
with aiosmtpd's own parser."""

import asyncio
import dataclasses

import pytest
from aiosmtpd.smtp import SMTP

from ums.inbound import InboundMessage
from ums.sieve import Chain, compile_script, evaluate
from mas.smtp import InboundSMTP

from tests.unit.mas import mas_samples as samples

SCRIPTS = [
    'require ["fileinto", "imap4flags"]; if allof (header :contains "subject" "Loan", '
    'address :domain :is "from" "customer.example") { addflag "$loan"; fileinto "Loans"; }',
    'require "fileinto"; if header :is ["subject", "x-tag"] ["VIP", "gold"] { fileinto "VIP"; stop; }',
    'require "fileinto"; if header :contains "subject" "spam" { fileinto "Junk"; } '
    'elsif anyof (header :contains "subject" "offer", header :contains "x-tag" "promo") { fileinto "Offers"; }',
    'require "imap4flags"; if header :contains "subject" "수신거부" { setflag "\\\\Flagged"; }',
    'require "fileinto"; if not header :contains "subject" "Loan" { fileinto "Other"; }',
    'require "fileinto"; if header :matches "subject" "*urgent*" { fileinto "Urgent"; } else { keep; }',
    'require "fileinto"; if header :comparator "i;octet" :contains "subject" "Loan" { fileinto "Exact"; }',
    'require "fileinto"; if size :over 2K { fileinto "Big"; }',
    'require "fileinto"; if header :contains "x-missing" "" { fileinto "Never"; }',
]

SUBJECTS = ["Loan question", "re: LOAN", "vip", "Gold", "special offer", "SPAM offer", "광고 수신거부",
            "Urgent: loan", "nothing here", ""]


def message(subject: str, tag: str | None = None, body: str = "hello\n") -> InboundMessage:
    headers = {"X-Tag": tag} if tag else {}
    raw = samples.text_message("Kim <kim@customer.example>", "sales@bank.example", subject, body,
                               charset="euc-kr", **headers)
    return InboundMessage(raw, "kim@customer.example", ["sales@bank.example"])


def outcome(verdict):
    return (verdict.folders, verdict.redirects, verdict.reject, verdict.discarded, verdict.implicit_keep)


@pytest.mark.parametrize("subject", SUBJECTS)
@pytest.mark.parametrize("tag", [None, "promo", "GOLD"])
def test_chain_decides_as_running_every_script(subject, tag):
    scripts = [compile_script(text, name=f"s{n}") for n, text in enumerate(SCRIPTS)]
    unguarded = [dataclasses.replace(script, guard=None) for script in scripts]
    for body in ("hello\n", "x" * 3000 + "\n"):
        expected = evaluate(unguarded, message(subject, tag, body), "sales@bank.example")
        got = evaluate(Chain(scripts), message(subject, tag, body), "sales@bank.example")
        assert outcome(got) == outcome(expected)


def test_guards_found_and_refused_where_they_must_be():
    guards = [compile_script(text).guard for text in SCRIPTS]
    assert guards[0] == {("subject", "loan")}
    assert guards[1] == {("subject", "vip"), ("subject", "gold"), ("x-tag", "vip"), ("x-tag", "gold")}
    assert guards[2] == {("subject", "spam"), ("subject", "offer"), ("x-tag", "promo")}
    assert guards[4:8] == [None, None, None, None]  # not, else, :matches, i;octet, size


def test_chain_runs_only_scripts_that_may_act():
    scripts = [compile_script(f'require "fileinto"; if header :contains "subject" "campaign-{n}" '
                              f'{{ fileinto "C{n}"; }}', name=str(n)) for n in range(200)]
    verdict = evaluate(Chain(scripts), message("Re: campaign-17 and campaign-170"), "sales@bank.example")
    assert set(verdict.folders) == {"C1", "C17", "C170"}
    assert verdict.trace == ["1", "17", "170"]


ADDRESSES = ["<a@b.c>", " <a@b.c> SIZE=100 BODY=8BITMIME", "<a.b+c@d-e.f>", "<>", '<"q x"@b.c>', "<a..b@c>",
             "a@b.c", "<a@b.c>  SMTPUTF8", "<@route:a@b.c>", "<a@[1.2.3.4]>", "<.a@b>", "<a@-b.c>",
             "<유@b.c>", "<a@b.c>x", "<a@b.c> ", "<a@b.c> (comment) SIZE=1", "<a@b.c.>", "<a@b..c>",
             "<bounce+Tok_9-x@ums.local>", "<" + "l" * 70 + "@b.c>"]


@pytest.mark.parametrize("argument", ADDRESSES)
def test_envelope_address_fast_path_agrees_with_aiosmtpd(argument):
    loop = asyncio.new_event_loop()
    try:
        fast, full = InboundSMTP(object(), loop=loop), SMTP(object(), loop=loop)
        assert fast._getaddr(argument) == full._getaddr(argument)
    finally:
        loop.close()


FROM_HEADERS = ["Customer 5 <c5@customer.example>", "c5@customer.example", '"Kim, J" <k@x.y>', "Kim J. Lee <K@X.Y>",
                "=?euc-kr?b?yKux5rW/?= <hong@x.kr>", "a@b.c, d@e.f", "<a@b.c>", "Name (c) <a@b.c>",
                "Name <a@b.c> (c)", "  Name   <a@b.c>  ", "undisclosed-recipients:;", "Foo <a.b+c@x-y.z>"]


@pytest.mark.parametrize("value", FROM_HEADERS)
def test_sender_fast_path_agrees_with_the_address_grammar(value):
    from email.utils import getaddresses

    message = InboundMessage(f"From: {value}\r\nSubject: x\r\n\r\nbody\r\n".encode(), "env@sender.example", [])
    found = [address for _, address in getaddresses(message.header_values("from")) if "@" in address]
    assert message.sender == (found[0] if found else "env@sender.example").lower()
