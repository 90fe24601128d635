"""Scripted voice and fax channels for the journey load test (must-show 1),
loaded by a real PASS process through ``[channels]``: the project has no
simulated channels, and a thousand real SIP calls (or hundreds of faxes
rendered by Ghostscript, for the 1000-customer form) do not fit a test run.
A number whose last seven digits are 1 modulo 3 answers (20 s of call),
every other one rings out (NO ANSWER, temporary: PASS retries it until the
delivery expires) — the outcomes the SIP driver reports. Every fax is
delivered, one page. The real SIP and T.37 branch is proven with baresip
and Ghostscript in tests/integration/channels/test_journey_voice_fax.py (and
the 150-customer form sends its faxes through the real T.37 channel)."""

from __future__ import annotations

from datetime import timedelta

from ums.channels import ANSWERED, NO_ANSWER, SENT, TEMPORARY, Channel, Delivery, Outcome
from ums.clock import utcnow


def answers(number: str) -> bool:
    return int(number[-7:]) % 3 == 1


class ScriptedVoice(Channel):
    name = "voice"

    async def send(self, delivery: Delivery) -> Outcome:
        started = utcnow()
        if answers(delivery.recipient):
            return Outcome(SENT, "200", "answered", disposition=ANSWERED, started_at=started,
                           answered_at=started + timedelta(seconds=3), ended_at=started + timedelta(seconds=23),
                           billsec=20, dstchannel="scripted")
        return Outcome(TEMPORARY, "NOANSWER", "no answer", disposition=NO_ANSWER, started_at=started,
                       ended_at=started + timedelta(seconds=30), dstchannel="scripted")


class ScriptedFax(Channel):
    name = "fax"

    async def send(self, delivery: Delivery) -> Outcome:
        started = utcnow()
        return Outcome(SENT, "2.0.0", "fax delivered", disposition=ANSWERED, started_at=started,
                       answered_at=started, ended_at=started + timedelta(seconds=40), billsec=40, pages=1,
                       dstchannel="scripted")
