"""EPS sends only to addresses that can be sent to: a customer record whose
email holds a line break (a header injection) or whose fax is not a number
is skipped for that channel, and the next channel of the policy is used."""

from ums.event_services.definitions import from_dict
from ums.event_services.dispatch import channel_steps

DEFINITION = from_dict({
    "name": "deposit-alert", "event_type": "deposit",
    "templates": {"email": "deposit-email", "fax": "deposit-fax", "voice": "deposit-voice"},
    "policy": {"default": ["email", "fax", "voice"]},
})


def test_an_injected_email_and_a_fax_that_is_no_number_are_skipped():
    contact = {"email": "kim@example.com\r\nBcc: evil@example.net", "fax": "abc", "phone": "010-1234-5678"}
    steps, skipped = channel_steps(DEFINITION, contact)
    assert [step["channel"] for step in steps] == ["voice"]
    assert steps[0]["recipient"] == "010-1234-5678"
    assert skipped == ["email", "fax"]


def test_valid_addresses_are_all_used_in_policy_order():
    contact = {"email": "kim@example.com", "fax": "+82 2 555 0101", "phone": "010-1234-5678"}
    steps, skipped = channel_steps(DEFINITION, contact)
    assert [step["channel"] for step in steps] == ["email", "fax", "voice"] and skipped == []
