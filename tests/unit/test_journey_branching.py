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


def walk_at(since, timezone="Asia/Seoul"):
    from ums.journeys.engine import Settings, _Walk

    run = {"id": 1, "step": "w", "next_at": since, "contact_id": 1}
    walk = _Walk(None, Settings(), None, {}, run, since)
    walk.contact = {"timezone": timezone, "attributes": {"birthday": "2026-12-24"}}
    return walk


def test_waits_until_a_time_of_day_in_the_customers_own_zone():
    from datetime import datetime, timezone

    from ums.journeys.definitions import Step

    nine = Step("w", "wait", until="09:00")
    # 14:00 in Seoul: tomorrow 09:00 Seoul (00:00 UTC)
    assert walk_at(datetime(2026, 12, 3, 5, 0, tzinfo=timezone.utc))._wait_until(nine) == \
        datetime(2026, 12, 4, 0, 0, tzinfo=timezone.utc)
    # 03:30 in Seoul: today 09:00 Seoul
    assert walk_at(datetime(2026, 12, 2, 18, 30, tzinfo=timezone.utc))._wait_until(nine) == \
        datetime(2026, 12, 3, 0, 0, tzinfo=timezone.utc)
    # the same instant for a customer in London (18:30 there): 09:00 London tomorrow
    assert walk_at(datetime(2026, 12, 2, 18, 30, tzinfo=timezone.utc), "Europe/London")._wait_until(nine) == \
        datetime(2026, 12, 3, 9, 0, tzinfo=timezone.utc)


def test_waits_for_a_duration_from_when_the_wait_began_and_until_a_date_field():
    from datetime import datetime, timedelta, timezone

    from ums.journeys.definitions import Step

    began = datetime(2026, 12, 3, 5, 0, tzinfo=timezone.utc)
    assert walk_at(began)._wait_until(Step("w", "wait", seconds=172800)) == began + timedelta(days=2)
    # a date without a time is midnight in the customer's zone
    assert walk_at(began)._wait_until(Step("w", "wait", field="birthday")) == \
        datetime(2026, 12, 23, 15, 0, tzinfo=timezone.utc)
    assert walk_at(began)._wait_until(Step("w", "wait", field="missing")) is None
