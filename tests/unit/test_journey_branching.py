"""What a branch reads from an earlier send: each outcome from the delivery's
state, CDR attempts, tracking and inbound replies."""

from ums.journeys.engine import holds, outcome_signals


def facts(channel="email", state="sent", attempts=(("ANSWERED", None, True),), tracked=(), inbound=(),
          bounced=False) -> dict:
    return {"channel": channel, "state": state, "bounced": bounced, "code": "",
            "attempts": list(attempts), "tracked": set(tracked), "inbound": set(inbound)}


def test_an_email_delivered_opened_and_clicked():
    assert outcome_signals(facts(tracked={"open", "click"})) == {"delivered", "opened", "clicked"}
    assert outcome_signals(facts()) == {"delivered"}


def test_a_call_answered_or_not():
    assert outcome_signals(facts("voice")) == {"delivered", "answered"}
    unanswered = facts("voice", "expired", [("NO ANSWER", None, False), ("NO ANSWER", None, False),
                                            ("FAILED", None, True)])
    assert outcome_signals(unanswered) == {"failed", "no_answer"}
    busy = facts("voice", "failed", [("NO ANSWER", None, False), ("BUSY", None, True)])
    assert outcome_signals(busy) == {"failed", "busy"}


def test_a_call_still_ringing_has_no_outcome_yet():
    assert outcome_signals(facts("voice", "retry", [("NO ANSWER", None, False)])) == set()


def test_refused_replied_bounced_and_nothing_sent():
    assert "refused" in outcome_signals(facts(state="suppressed", attempts=[("FAILED", None, True)]))
    assert "replied" in outcome_signals(facts(inbound={"reply"}))
    assert outcome_signals(facts(bounced=True)) == {"bounced", "failed"}
    assert outcome_signals(None) == {"failed"}


def test_fax_pages():
    fax = facts("fax", attempts=[("ANSWERED", 3, True)])
    assert holds("fax_delivered", outcome_signals(fax), fax)
    assert holds("fax_delivered>=3", outcome_signals(fax), fax)
    assert not holds("fax_delivered>=4", outcome_signals(fax), fax)
