"""Who called the refusal line (ums.channels.voice.refusal_line): the trusted
trunk's P-Asserted-Identity wins over the From header; only INVITEs from the
configured networks are believed; a bad setting is one clear error."""

from datetime import datetime, timezone

import pytest

from ums.channels.voice.refusal_line import Invite, LineCall, LineSettings, RefusalLineError

NOW = datetime(2026, 12, 2, 6, 0, tzinfo=timezone.utc)


def test_the_asserted_identity_of_the_trunk_names_the_caller():
    invite = Invite("10.0.0.5:5060", "<sip:anything@attacker.example>;tag=1", "<sip:+821012345678@trunk.example>")
    assert LineCall("c1", "sip:x@y", NOW, invite).caller == "+821012345678"
    plain = Invite("127.0.0.1:5062", '"Kim" <sip:01012345678@127.0.0.1:5062>;tag=2')
    assert LineCall("c2", "sip:x@y", NOW, plain).caller == "01012345678"


def test_only_the_configured_networks_are_believed():
    line = LineSettings.from_config({"refusal_line": "sip:0800001234@127.0.0.1:5070",
                                     "refusal_trusted": "10.0.0.0/8 127.0.0.1"})
    assert line.number == "0800001234" and line.host_port == ("127.0.0.1", 5070)
    assert line.believes("10.20.30.40:5060") and line.believes("127.0.0.1:40000")
    assert not line.believes("192.0.2.7:5060") and not line.believes("trunk.example:5060")
    assert LineSettings.from_config({"refusal_line": ""}) is None


@pytest.mark.parametrize("section", [{"refusal_line": "sip:080@127.0.0.1:5070", "refusal_trusted": "the trunk"},
                                     {"refusal_line": "sip:080@127.0.0.1"}])
def test_a_bad_setting_is_one_clear_error(section):
    with pytest.raises(RefusalLineError, match="refusal"):
        LineSettings.from_config(section)
