"""HylaFAX driver: submit with ``sendfax``, track with ``faxstat``, cancel with ``faxrm``.

The client tools talk to ``hfaxd`` (which must admit this host in
``hosts.hfaxd``); ``faxq`` beside it schedules the job on a modem. A job's
life as ``faxstat`` shows it: queued/waiting (``P``, ``W``, ``S``, ``B``,
``R``), then done (``D``) or failed (``F``). HylaFAX's own redialling is kept
to the configured minimum so that PASS does the retrying and each attempt
gets its own CDR row.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from .. import BUSY, FAILED, NO_ANSWER, PERMANENT, SENT, TEMPORARY, Outcome
from ...errors import UmsError
from ...media import ToolFailed, require, run_tool
from .render import FaxDocument

_REQUEST_ID = re.compile(r"request id is (\d+)")
# "1    127 R    ums 0212345678    0:3   0:12         Waiting for modem"
_JOB_LINE = re.compile(
    r"^\s*(?P<jid>\d+)\s+(?P<pri>\d+)\s+(?P<state>[A-Z])\s+(?P<owner>\S+)\s+(?P<number>\S+)\s+"
    r"(?P<sent>\d+):(?P<total>\d+)\s+(?P<dials>\d+):(?P<maxdials>\d+)\s*(?P<tts>\d+:\d+)?\s*(?P<status>.*)$"
)
DONE, FAILED_STATE = "D", "F"


class HylafaxError(UmsError):
    """HylaFAX at {server}: {reason}."""


@dataclass
class Job:
    """One fax job as ``faxstat`` lists it."""

    id: str
    state: str
    number: str
    pages_sent: int
    pages_total: int
    dials: int
    status: str

    @property
    def finished(self) -> bool:
        return self.state in (DONE, FAILED_STATE)


def parse_jobs(listing: str) -> dict[str, Job]:
    """The jobs in ``faxstat -s``/``-d`` output, by job id."""
    jobs = {}
    for line in listing.splitlines():
        match = _JOB_LINE.match(line)
        if match:
            jobs[match["jid"]] = Job(match["jid"], match["state"], match["number"], int(match["sent"]),
                                     int(match["total"]), int(match["dials"]), match["status"].strip())
    return jobs


@dataclass
class HylafaxServer:
    host: str
    port: int
    user: str
    max_dials: int = 1
    wait: float = 900
    poll: float = 2.0
    timeout: float = 30

    @classmethod
    def from_config(cls, section: dict) -> "HylafaxServer":
        return cls(section["hylafax_host"], section["hylafax_port"], section["hylafax_user"],
                   section["hylafax_max_dials"], section["hylafax_wait"], section["hylafax_poll"],
                   section["hylafax_timeout"])

    @property
    def server(self) -> str:
        return f"{self.host}:{self.port}"

    async def _client(self, tool: str, *args: str) -> str:
        argv = [require(tool, "hylafax-client"), "-h", self.server, *args]
        try:
            result = await run_tool(argv, self.timeout, env={"FAXUSER": self.user})
        except ToolFailed as error:
            raise HylafaxError(server=self.server, reason=str(error)) from None
        return result.stdout

    async def submit(self, number: str, document: FaxDocument) -> str:
        """Queue the document for ``number``; returns the HylaFAX job id."""
        output = await self._client("sendfax", "-n", "-T", str(self.max_dials), "-t", str(self.max_dials),
                                    "-d", number, str(document.path))
        match = _REQUEST_ID.search(output)
        if not match:
            raise HylafaxError(server=self.server, reason=f"sendfax gave no job id: {output.strip()!r}")
        return match[1]

    async def job(self, job_id: str) -> Job | None:
        """The job's current line in the send queue or the done queue."""
        return parse_jobs(await self._client("faxstat", "-s", "-d")).get(job_id)

    async def cancel(self, job_id: str) -> None:
        await self._client("faxrm", job_id)

    async def send(self, number: str, document: FaxDocument) -> Outcome:
        """Submit and follow the job until it is done, failed or out of time."""
        try:
            job_id = await self.submit(number, document)
        except HylafaxError as error:
            return Outcome(TEMPORARY, "submit", str(error), disposition=FAILED, dstchannel=self.server)
        job = await self._follow(job_id)
        return self.outcome(job_id, job, document)

    async def _follow(self, job_id: str) -> Job | None:
        deadline = asyncio.get_running_loop().time() + self.wait
        job = None
        while asyncio.get_running_loop().time() < deadline:
            try:
                job = await self.job(job_id) or job
            except HylafaxError:
                pass
            if job and job.finished:
                return job
            await asyncio.sleep(self.poll)
        try:
            await self.cancel(job_id)
        except HylafaxError:
            pass
        return job

    def outcome(self, job_id: str, job: Job | None, document: FaxDocument) -> Outcome:
        """Map the job's final state to an attempt outcome."""
        extra = {"hylafax_job": job_id}
        common = dict(dstchannel=self.server, bytes=document.bytes, extra=extra)
        if job is None or not job.finished:
            detail = f"job {job_id} still queued after {self.wait:g}s; removed"
            return Outcome(TEMPORARY, "timeout", detail, disposition=NO_ANSWER, pages=0, **common)
        if job.state == DONE:
            return Outcome(SENT, "done", job.status or "sent", pages=job.pages_sent or job.pages_total, **common)
        status = job.status.lower()
        if "busy" in status:
            return Outcome(TEMPORARY, "BUSY", job.status, disposition=BUSY, pages=job.pages_sent, **common)
        if "no answer" in status or "no carrier" in status or "no response" in status:
            return Outcome(TEMPORARY, "NOANSWER", job.status, disposition=NO_ANSWER, pages=job.pages_sent, **common)
        if "aborted by request" in status or "removed" in status:
            return Outcome(PERMANENT, "cancelled", job.status, disposition=FAILED, pages=job.pages_sent, **common)
        return Outcome(TEMPORARY, "failed", job.status, disposition=FAILED, pages=job.pages_sent, **common)
