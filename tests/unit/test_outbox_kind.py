"""A delivery is sent as its template's kind: advertising content is never
sent as transactional, whatever the request said."""

import pytest

from ums.outbox import AdvertisingTemplate, kind_for, settled_kind

OFFER = {"name": "monthly-offer", "channel": "email", "kind": "advertising"}
NOTICE = {"name": "notice", "channel": "email", "kind": "transactional"}


def test_the_template_decides_when_nothing_is_asked():
    assert settled_kind(OFFER, None) == "advertising"
    assert settled_kind(NOTICE, None) == "transactional"
    assert settled_kind(None, None) == "transactional"


def test_advertising_content_stays_advertising():
    assert settled_kind(OFFER, "transactional") == "advertising"
    assert settled_kind(NOTICE, "advertising") == "advertising"


def test_asking_for_transactional_advertising_is_refused_in_one_line():
    with pytest.raises(AdvertisingTemplate) as error:
        kind_for(OFFER, "transactional")
    assert "monthly-offer" in str(error.value) and "\n" not in str(error.value)
    assert kind_for(OFFER, "advertising") == "advertising"
    assert kind_for(NOTICE, None) == "transactional"
