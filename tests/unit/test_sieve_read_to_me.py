"""Read-it-to-me rules as Sieve (ums.sieve.delivery): the script WAS writes
round-trips to the same choices, a hand-written notify with the UMS option
means the same, and a notice without it stays a notice."""

import pytest

from ums.sieve import SieveError, compile_script, evaluate
from ums.sieve import delivery
from ums.sieve.delivery import Conversion


def test_choices_round_trip_through_the_script():
    choices = [Conversion("fax", "tel:+821012345678"), Conversion("email", "fax:+8225550100"),
               Conversion("fax", "mailto:me@bank.example")]
    text = delivery.script(choices)
    assert 'notify :options ["ums-content=fax"] "tel:+821012345678";' in text
    assert delivery.conversions_of(text) == choices
    assert delivery.script([]) == "" and delivery.conversions_of("") == []


def test_the_option_decides_which_messages_are_converted():
    text = 'require "enotify";\nnotify :options ["ums-content=fax"] "tel:+821012345678";\nnotify "mailto:a@b.example";'
    [read, notice] = evaluate([compile_script(text)], delivery._AnyMessage(), "").notifications
    assert delivery.converts(read, "fax") and not delivery.converts(read, "email")
    assert delivery.content_of(notice) is None and not delivery.converts(notice, "fax")
    anything = evaluate([compile_script('require "enotify"; notify :options ["ums-content=any"] "tel:1234";')],
                        delivery._AnyMessage(), "").notifications[0]
    assert delivery.converts(anything, "email") and delivery.converts(anything, "fax")


@pytest.mark.parametrize("choice", [Conversion("voice", "tel:+8210"), Conversion("fax", "http://x.example"),
                                    Conversion("fax", 'tel:1"; discard; "')])
def test_bad_choices_are_refused(choice):
    with pytest.raises(SieveError):
        delivery.script([choice])
