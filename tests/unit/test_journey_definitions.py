"""Journey definitions: the sample flow reads the same from JSON and XML, and
a bad definition is refused in one line that names the step and the problem."""

from pathlib import Path

import pytest

from ums.errors import BadJourney
from ums.journeys import definitions

SAMPLES = Path(__file__).resolve().parents[2] / "config" / "samples"


def winback(**changes) -> dict:
    data = definitions.load((SAMPLES / "journey-winback.json").read_bytes()).as_dict()
    data.update(changes)
    return data


def test_the_sample_reads_the_same_from_json_and_xml():
    from_json = definitions.load((SAMPLES / "journey-winback.json").read_bytes())
    from_xml = definitions.load((SAMPLES / "journey-winback.xml").read_bytes())
    assert from_json == from_xml
    assert [step.kind for step in from_json.steps] == ["send", "wait", "branch", "send", "branch", "send", "exit"]
    assert from_json.step("two-days").seconds == 2 * 86400
    assert from_json.step("call").expires_after == 3600
    assert from_json.after(from_json.step("fax")) == "done"
    assert from_json.step("opened?").cases == (("opened", "done"),)
    assert definitions.from_dict(from_json.as_dict()) == from_json   # the stored form reads back


@pytest.mark.parametrize("text, seconds", [
    ("90s", 90), ("30m", 1800), ("48h", 172800), ("2d", 172800), ("P2D", 172800), ("PT1H30M", 5400), (600, 600)])
def test_durations(text, seconds):
    assert definitions.parse_duration(text) == seconds


@pytest.mark.parametrize("steps, message", [
    ([], "steps must be a non-empty array"),
    ([{"id": "a", "send": {"channel": "pigeon", "template": "t"}}], "step 'a': channel must be one of email, fax, voice"),
    ([{"id": "a", "send": {"channel": "email"}}], "step 'a': template must be a string (required)"),
    ([{"id": "a", "wait": {"duration": "soon"}}], "step 'a': bad duration 'soon'"),
    ([{"id": "a", "wait": {"until": "25:00"}}], "step 'a': until must be a time of day HH:MM"),
    ([{"id": "a", "wait": {}}], "step 'a': a wait needs exactly one of duration, until (HH:MM) or field"),
    ([{"id": "a", "send": {"channel": "email", "template": "t"}},
      {"id": "b", "branch": {"cases": {"teleported": "a"}}}], "step 'b': unknown outcome 'teleported'"),
    ([{"id": "b", "branch": {"cases": {"opened": "b"}}}], "step 'b' branches on an outcome but no send step"),
    ([{"id": "a", "send": {"channel": "email", "template": "t"}, "next": "nowhere"}],
     "step 'a' leads to unknown step 'nowhere'"),
    ([{"id": "a", "exit": {}}, {"id": "a", "goal": {}}], "step id 'a' is used twice"),
    ([{"id": "a", "send": {"channel": "email", "template": "t"}, "wait": {"duration": "1d"}}],
     "step 1 must have exactly one of send, wait, branch, exit, goal"),
])
def test_bad_definitions_say_what_is_wrong_in_one_line(steps, message):
    with pytest.raises(BadJourney) as caught:
        definitions.from_dict({"name": "j", "steps": steps}, where="in j.json")
    text = str(caught.value)
    assert text.startswith("Bad journey definition in j.json: ") and message in text and "\n" not in text


def test_bad_json_and_xml_are_refused_in_one_line():
    with pytest.raises(BadJourney, match="Bad journey definition: .*line 1"):
        definitions.load(b'{"name": "j", ')
    with pytest.raises(BadJourney, match="does not match the journey schema"):
        definitions.load(b'<journey name="j"><send id="a" channel="email"/></journey>')
    with pytest.raises(BadJourney, match="name must be"):
        definitions.load(b'{"name": "no spaces please", "steps": [{"exit": {}}]}')


def test_fax_pages_and_field_branches():
    journey = definitions.from_dict({"name": "j", "steps": [
        {"id": "fax", "send": {"channel": "fax", "template": "t"}},
        {"id": "pages?", "branch": {"cases": [["fax_delivered>=2", "vip"]], "otherwise": "grade?"}},
        {"id": "grade?", "branch": {"field": "grade", "cases": {"VIP": "vip"}}},
        {"id": "vip", "goal": {}}]})
    assert definitions.pages_wanted("fax_delivered>=2") == 2
    assert journey.step("grade?").field == "grade"
    assert journey.send_before(journey.step("pages?")).id == "fax"
