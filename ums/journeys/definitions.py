"""Journey definitions: a multi-step flow one customer walks through.

A definition is JSON or XML (validated against ``config/xsd/journey.xsd``);
both read into one :class:`Journey` of typed steps. JSON form::

    {
      "name": "winback",
      "kind": "advertising",                   # or "transactional"
      "event_type": "dormant",                 # optional: EPS enters the event's customer
      "tracking": true,                        # optional: its emails count opens and clicks
      "steps": [
        {"id": "mail", "send": {"channel": "email", "template": "winback-email"}},
        {"id": "two-days", "wait": {"duration": "2d"}},
        {"id": "opened?", "branch": {"step": "mail", "cases": {"opened": "done"}, "otherwise": "call"}},
        {"id": "call", "send": {"channel": "voice", "template": "winback-voice", "expires_after": "1h"}},
        {"id": "answered?", "branch": {"step": "call", "cases": {"answered": "done"}, "otherwise": "fax"}},
        {"id": "fax", "send": {"channel": "fax", "template": "winback-fax"}, "next": "done"},
        {"id": "done", "exit": {}}
      ]
    }

Steps run in order unless one names its ``next`` (a branch names where each
case goes). Kinds of step:

* ``send`` — one delivery on ``channel`` from ``template`` (made by the
  delivery core); ``expires_after`` bounds its retries (a call that is never
  answered ends ``no_answer`` then, and the journey moves on);
* ``wait`` — ``duration`` (``90s``, ``30m``, ``48h``, ``2d`` or ISO 8601
  ``P2D``/``PT1H``), or ``until`` a local time of day (``09:00``) in the
  customer's own zone, or until the date in a contact field (``field``);
* ``branch`` — on the outcome of an earlier send step (``step``, default the
  latest one): the first case in :data:`OUTCOMES` order as written that holds
  wins (``fax_delivered>=2`` for a fax of at least two pages), else
  ``otherwise``; or on a contact field (``field``: ``grade``…), case by value;
* ``exit`` / ``goal`` — the customer leaves (a goal counts as reached).

A customer who refuses (suppression, preference centre) leaves before the
next send whatever the flow says. Bad definitions raise
:class:`ums.errors.BadJourney` naming the step and the problem in one line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import time, timedelta

from ums import safejson, xml
from ums.addresses import CHANNELS
from ums.config import SHIPPED_CONFIG_DIR
from ums.errors import BadJourney

JOURNEY_XSD = SHIPPED_CONFIG_DIR / "xsd" / "journey.xsd"
KINDS = ("advertising", "transactional")
MAX_DEFINITION_BYTES = 256 * 1024
MAX_STEPS = 100
#: what a branch may ask of an earlier send
OUTCOMES = ("delivered", "opened", "clicked", "replied", "refused", "bounced", "failed",
            "answered", "no_answer", "busy", "fax_delivered")
STEP_KINDS = ("send", "wait", "branch", "exit", "goal")
#: branchable contact columns (anything else is read from contacts.attributes)
CONTACT_FIELDS = ("grade", "locale", "timezone")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_STEP_ID = re.compile(r"^[^\x00-\x1f\x7f]{1,64}$")
_EVENT_TYPE = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")
_SHORT = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_ISO = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_PAGES = re.compile(r"^fax_delivered>=(\d{1,3})$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Step:
    id: str
    kind: str                                   # one of STEP_KINDS
    next: str | None = None                     # the step after it (None: the following one)
    channel: str | None = None                  # send
    template: str | None = None                 # send
    expires_after: int | None = None            # send: seconds its delivery may keep retrying
    seconds: int | None = None                  # wait: a duration
    until: str | None = None                    # wait: HH:MM in the customer's zone
    field: str | None = None                    # wait: a date field; branch: a contact field
    step: str | None = None                     # branch: the send step whose outcome it reads
    cases: tuple[tuple[str, str], ...] = ()     # branch: (outcome or value, next step id), in order
    otherwise: str | None = None                # branch: where no case leads

    def as_dict(self) -> dict:
        """The step in its JSON form (what :func:`from_dict` reads back)."""
        body = {"channel": self.channel, "template": self.template, "expires_after": self.expires_after,
                "duration": self.seconds, "until": self.until, "field": self.field, "step": self.step,
                "cases": [list(case) for case in self.cases] or None, "otherwise": self.otherwise}
        data = {"id": self.id, self.kind: {k: v for k, v in body.items() if v is not None}}
        if self.next:
            data["next"] = self.next
        return data


@dataclass(frozen=True)
class Journey:
    name: str
    kind: str
    steps: tuple[Step, ...]
    event_type: str | None = None
    description: str = ""
    #: its emails carry the open pixel and signed click links (opt-in, as for campaigns)
    tracking: bool = False
    _index: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self):
        self._index.update({step.id: number for number, step in enumerate(self.steps)})

    def step(self, step_id: str) -> Step:
        return self.steps[self._index[step_id]]

    def after(self, step: Step) -> str | None:
        """The id of the step that follows ``step`` (None: the journey ends)."""
        if step.next:
            return step.next
        number = self._index[step.id] + 1
        return self.steps[number].id if number < len(self.steps) else None

    def send_before(self, step: Step) -> Step | None:
        """The latest send step written before ``step``: a branch's default subject."""
        for earlier in reversed(self.steps[:self._index[step.id]]):
            if earlier.kind == "send":
                return earlier
        return None

    def as_dict(self) -> dict:
        data = {"name": self.name, "kind": self.kind, "steps": [step.as_dict() for step in self.steps]}
        if self.event_type:
            data["event_type"] = self.event_type
        if self.description:
            data["description"] = self.description
        if self.tracking:
            data["tracking"] = True
        return data


# --- reading ---------------------------------------------------------------------

def load(data: bytes | str, where: str = "") -> Journey:
    """A definition from a file's bytes: XML when it starts with ``<``, else JSON."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    if len(text.encode("utf-8")) > MAX_DEFINITION_BYTES:
        raise BadJourney(where=_where(where), reason=f"larger than {MAX_DEFINITION_BYTES} bytes")
    if text.lstrip().startswith("<"):
        return from_xml(data, where)
    try:
        document = safejson.loads(data)
    except safejson.BadJson as exc:
        raise BadJourney(where=_where(where), reason=str(exc)) from None
    return from_dict(document, where)


def from_xml(data: bytes | str, where: str = "") -> Journey:
    try:
        root = xml.parse_valid(data, JOURNEY_XSD, max_bytes=MAX_DEFINITION_BYTES)
    except xml.XmlError as exc:
        raise BadJourney(where=_where(where), reason=str(exc)) from None
    steps = [_xml_step(element) for element in root if isinstance(element.tag, str)]
    return from_dict({"name": root.get("name"), "kind": root.get("kind", "advertising"),
                      "event_type": root.get("event-type"), "description": root.get("description") or "",
                      "tracking": root.get("tracking", "false"),
                      "steps": steps}, where)


def _xml_step(element) -> dict:
    kind = element.tag
    body = {key.replace("-", "_"): value for key, value in element.attrib.items() if key not in ("id", "next")}
    if kind == "branch":
        body["cases"] = [[case.get("outcome") or case.get("value"), case.get("next")]
                         for case in element if case.tag == "case"]
        body.update({"otherwise": case.get("next") for case in element if case.tag == "otherwise"})
    step = {"id": element.get("id"), kind: body}
    if element.get("next"):
        step["next"] = element.get("next")
    return step


def from_dict(data, where: str = "") -> Journey:
    """Build and check a definition from its JSON form (also the stored form)."""
    where = _where(where)
    if not isinstance(data, dict):
        raise BadJourney(where=where, reason="expected a JSON object")
    try:
        journey = Journey(
            name=_matching(data.get("name"), "name", _NAME, "1-64 letters, digits or _.- (starting with one)"),
            kind=_choice(data.get("kind", "advertising"), "kind", KINDS),
            event_type=_optional(data.get("event_type"), "event_type", _EVENT_TYPE, "1-64 letters, digits or _.:-"),
            description=_string(data.get("description") or "", "description"),
            tracking=_flag(data.get("tracking", False)),
            steps=tuple(_steps(data.get("steps"))),
        )
        _check_links(journey)
    except ValueError as exc:
        raise BadJourney(where=where, reason=str(exc)) from None
    return journey


def _where(where: str) -> str:
    return f" {where}" if where else ""


def _steps(items) -> list[Step]:
    if not isinstance(items, list) or not items:
        raise ValueError("steps must be a non-empty array")
    if len(items) > MAX_STEPS:
        raise ValueError(f"at most {MAX_STEPS} steps")
    steps, seen = [], set()
    for number, item in enumerate(items, 1):
        step = _step(item, number)
        if step.id in seen:
            raise ValueError(f"step id {step.id!r} is used twice")
        seen.add(step.id)
        steps.append(step)
    return steps


def _step(item, number: int) -> Step:
    if not isinstance(item, dict):
        raise ValueError(f"step {number} must be an object")
    kinds = [kind for kind in STEP_KINDS if kind in item]
    if len(kinds) != 1:
        raise ValueError(f"step {number} must have exactly one of {', '.join(STEP_KINDS)}")
    kind = kinds[0]
    step_id = _matching(item.get("id", f"step-{number}"), f"step {number}'s id", _STEP_ID, "1-64 printable characters")
    body = item[kind] if item[kind] is not None else {}
    if not isinstance(body, dict):
        raise ValueError(f"step {step_id!r}: {kind} must be an object")
    nxt = _optional(item.get("next"), f"step {step_id!r}'s next", _STEP_ID, "a step id")
    try:
        return _BUILDERS[kind](step_id, nxt, body)
    except ValueError as exc:
        raise ValueError(f"step {step_id!r}: {exc}") from None


def _send(step_id: str, nxt, body: dict) -> Step:
    channel = _choice(body.get("channel"), "channel", CHANNELS)
    template = _string(body.get("template"), "template", required=True)
    expires = body.get("expires_after")
    return Step(step_id, "send", nxt, channel=channel, template=template,
                expires_after=parse_duration(expires) if expires not in (None, "") else None)


def _wait(step_id: str, nxt, body: dict) -> Step:
    given = [key for key in ("duration", "until", "field") if body.get(key) not in (None, "")]
    if len(given) != 1:
        raise ValueError("a wait needs exactly one of duration, until (HH:MM) or field")
    key = given[0]
    if key == "duration":
        return Step(step_id, "wait", nxt, seconds=parse_duration(body["duration"]))
    if key == "until":
        until = _string(body["until"], "until")
        if not _CLOCK.match(until):
            raise ValueError(f"until must be a time of day HH:MM, not {until!r}")
        return Step(step_id, "wait", nxt, until=until)
    return Step(step_id, "wait", nxt, field=_string(body["field"], "field"))


def _branch(step_id: str, nxt, body: dict) -> Step:
    if nxt:
        raise ValueError("a branch names where each case goes (cases, otherwise), not next")
    on_field = body.get("field")
    raw = body.get("cases") or []
    pairs = list(raw.items()) if isinstance(raw, dict) else raw
    if not isinstance(pairs, list) or not pairs:
        raise ValueError("a branch needs cases")
    cases = []
    for pair in pairs:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ValueError("each case is an outcome (or value) and the step it leads to")
        label, target = _string(pair[0], "a case", required=True), _string(pair[1], "a case's step", required=True)
        if not on_field and not is_outcome(label):
            raise ValueError(f"unknown outcome {label!r} (known: {', '.join(OUTCOMES)}, fax_delivered>=N)")
        cases.append((label, target))
    otherwise = body.get("otherwise")
    return Step(step_id, "branch", None, field=_string(on_field, "field") if on_field else None,
                step=_string(body["step"], "step") if body.get("step") else None,
                cases=tuple(cases), otherwise=_string(otherwise, "otherwise") if otherwise else None)


def _end(kind: str):
    def build(step_id: str, nxt, body: dict) -> Step:
        if nxt:
            raise ValueError(f"an {kind} step ends the journey; it has no next")
        return Step(step_id, kind)
    return build


_BUILDERS = {"send": _send, "wait": _wait, "branch": _branch, "exit": _end("exit"), "goal": _end("goal")}


def _check_links(journey: Journey) -> None:
    ids = {step.id for step in journey.steps}
    for step in journey.steps:
        targets = [step.next, step.otherwise] + [target for _, target in step.cases]
        for target in targets:
            if target is not None and target not in ids:
                raise ValueError(f"step {step.id!r} leads to unknown step {target!r}")
        if step.kind == "branch" and not step.field:
            subject = journey.step(step.step) if step.step in ids else None
            if step.step and (subject is None or subject.kind != "send"):
                raise ValueError(f"step {step.id!r} branches on {step.step!r}, which is not a send step")
            if subject is None and journey.send_before(step) is None:
                raise ValueError(f"step {step.id!r} branches on an outcome but no send step comes before it")


def is_outcome(label: str) -> bool:
    return label in OUTCOMES or bool(_PAGES.match(label))


def parse_duration(value) -> int:
    """Seconds of ``90s``/``30m``/``48h``/``2d``, ISO 8601 ``P2D``/``PT1H30M``, or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration must be like 30m, 48h, 2d or P2D")
    if isinstance(value, (int, float)):
        seconds = int(value)
    else:
        text = str(value).strip()
        short, iso = _SHORT.match(text), _ISO.match(text.upper())
        if short:
            seconds = int(short.group(1)) * _UNITS[short.group(2)]
        elif iso and text.upper() not in ("P", "PT"):
            days, hours, minutes, secs = (int(part or 0) for part in iso.groups())
            seconds = int(timedelta(days=days, hours=hours, minutes=minutes, seconds=secs).total_seconds())
        else:
            raise ValueError(f"bad duration {text!r} (like 30m, 48h, 2d or P2D)")
    if not 0 < seconds <= 366 * 86400:
        raise ValueError("a duration must be more than 0 and at most a year")
    return seconds


def time_of_day(text: str) -> time:
    hours, minutes = _CLOCK.match(text).groups()
    return time(int(hours), int(minutes))


def pages_wanted(label: str) -> int | None:
    """N of a ``fax_delivered>=N`` case, else None."""
    found = _PAGES.match(label)
    return int(found.group(1)) if found else None


def _matching(value, name: str, shape: re.Pattern, rule: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} is required")
    if not shape.match(value.strip()):
        raise ValueError(f"{name} must be {rule}")
    return value.strip()


def _optional(value, name: str, shape: re.Pattern, rule: str) -> str | None:
    return None if value in (None, "") else _matching(value, name, shape, rule)


def _flag(value) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise ValueError(f"tracking must be true or false, not {value!r}")


def _choice(value, name: str, allowed) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
    return value


def _string(value, name: str, required: bool = False, limit: int = 1024) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or (required and not value.strip()):
        raise ValueError(f"{name} must be a string" + (" (required)" if required else ""))
    if len(value) > limit or any(ord(ch) < 0x20 and ch not in "\t\n\r" for ch in value):
        raise ValueError(f"{name} must be printable and at most {limit} characters")
    return value.strip()
