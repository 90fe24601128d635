"""The preference centre's rules as logic: what a stored choice allows, which
choices are impossible, the form token's binding to one link, and the
site's topic list in the configuration."""

import pytest

from ums import config, preferences
from ums.errors import ConfigValueError

TOPICS = ["대출", "카드", "예금", "이벤트"]
ROW = {"channels_off": ["email"], "topics_off": ["카드"], "preferred_channel": "fax"}


def test_a_channel_off_stops_everything_on_it_and_a_topic_off_only_advertising():
    assert preferences.allows_given(None, "email", "카드", advertising=True)
    assert not preferences.allows_given(ROW, "email", None, advertising=False)
    assert not preferences.allows_given(ROW, "fax", "카드", advertising=True)
    assert preferences.allows_given(ROW, "fax", "카드", advertising=False)
    assert preferences.allows_given(ROW, "voice", "대출", advertising=True)
    assert preferences.allows_given(ROW, "voice", None, advertising=True)


def test_the_preferred_channel_goes_first_and_channels_off_are_left_out():
    assert preferences.ordered(["email", "fax", "voice"], None) == ["email", "fax", "voice"]
    assert preferences.ordered(["email", "fax", "voice"], ROW) == ["fax", "voice"]
    assert preferences.ordered(["voice", "email"], ROW) == ["voice"]
    assert preferences.ordered(["email", "voice", "fax"], {**ROW, "channels_off": []}) == ["fax", "email", "voice"]


@pytest.mark.parametrize("choice, reason", [
    (preferences.Choice(channels_off=frozenset({"email", "fax", "voice"})), "keep at least one channel on"),
    (preferences.Choice(channels_off=frozenset({"fax"}), preferred_channel="fax"), "fax is turned off"),
    (preferences.Choice(preferred_channel="pigeon"), "unknown channel 'pigeon'"),
    (preferences.Choice(channels_off=frozenset({"sms"})), "unknown channel 'sms'"),
    (preferences.Choice(topics_off=frozenset({"보험"})), "unknown topic '보험'"),
])
def test_impossible_choices_are_refused_with_their_reason(choice, reason):
    with pytest.raises(preferences.BadChoice) as caught:
        preferences.validate(choice, TOPICS)
    assert reason in str(caught.value)


def test_the_form_token_is_bound_to_one_link_and_one_site_key():
    token = preferences.form_token("k" * 32, "abc123")
    assert len(token) == 32 and token == preferences.form_token("k" * 32, "abc123")
    assert token != preferences.form_token("k" * 32, "abc124")
    assert token != preferences.form_token("j" * 32, "abc123")


def test_topics_come_from_the_configuration_and_must_fit_a_consent_record(tmp_path):
    assert config.load(tmp_path, config_file=tmp_path / "none.cfg").get("preferences", "topics") == TOPICS
    (tmp_path / "ums.cfg").write_text("[preferences]\ntopics = 신용 카드, 아주아주아주긴주제이름입니다\n")
    with pytest.raises(ConfigValueError) as caught:
        config.load(tmp_path)
    assert "longer than 10 characters" in str(caught.value)
    (tmp_path / "ums.cfg").write_text("[preferences]\ntopics = 신용 카드, 펀드\n")
    assert config.load(tmp_path).get("preferences", "topics") == ["신용 카드", "펀드"]
