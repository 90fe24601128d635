"""A scripted voice channel for the journey load test (must-show 1), loaded
by a real PASS process through ``[channels] voice``: the project has no
simulated voice channel and a thousand real SIP calls do not fit a test run.
A number whose last seven digits are 1 modulo 3 answers (20 s of call),
every other one rings out (NO ANSWER, temporary: PASS retries it until the
delivery expires) — the outcomes the SIP driver reports. The real SIP
branch is proven with baresip in test_journey_voice_fax.py."""

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
