"""What the fax and voice channels share: running external tools with a time
limit, filling a template's text, and turning a phone or fax number into the
international form gateways expect.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import UmsError


class ToolMissing(UmsError):
    """{tool} is not installed (Debian package {package})."""


class ToolFailed(UmsError):
    """{tool} failed: {reason}."""


class BadNumber(UmsError):
    """Invalid fax or phone number {number!r}: {reason}."""


@dataclass
class ToolResult:
    returncode: int
    stdout: str
    stderr: str


def require(tool: str, package: str) -> str:
    """The full path of ``tool``; :class:`ToolMissing` names the package to install."""
    found = shutil.which(tool)
    if not found:
        raise ToolMissing(tool=tool, package=package)
    return found


async def run_tool(argv: list[str], timeout: float, stdin: bytes | None = None,
                   env: dict | None = None, check: bool = True) -> ToolResult:
    """Run a command, killing it (and its children) when ``timeout`` passes.

    With ``check`` a non-zero exit raises :class:`ToolFailed` carrying the
    tool's last error line.
    """
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})}, start_new_session=True,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(stdin), timeout)
    except asyncio.TimeoutError:
        kill_group(process.pid)
        await process.wait()
        raise ToolFailed(tool=os.path.basename(argv[0]), reason=f"no answer within {timeout:g}s") from None
    except asyncio.CancelledError:  # the caller stops (a service shutting down): so does the tool
        kill_group(process.pid)
        await process.wait()
        raise
    result = ToolResult(process.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))
    if check and result.returncode != 0:
        reason = last_line(result.stderr) or last_line(result.stdout) or f"exit status {result.returncode}"
        raise ToolFailed(tool=os.path.basename(argv[0]), reason=reason)
    return result


def kill_group(pid: int) -> None:
    """Kill a process started with ``start_new_session`` and everything it started."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def fill(text: str | None, variables: dict, html: bool = False) -> str:
    """Render a template text with the recipient's fields (the shared sandboxed Jinja2);
    a broken template raises :class:`~ums.templates.TemplateRenderError`."""
    from jinja2 import TemplateError

    from .templates import TemplateRenderError, compile_text

    if not text:
        return ""
    try:
        return compile_text(text, html=html).render(**variables)
    except TemplateError as error:
        raise TemplateRenderError(name="fax/voice", reason=error) from None


def international(number: str, country_code: str) -> str:
    """``02-1234-5678`` → ``+82212345678`` (national numbers drop their trunk 0).

    Raises :class:`BadNumber` for something that cannot be dialled.
    """
    text = (number or "").strip()
    if text.lower().startswith(("tel:", "fax:")):
        text = text[4:]
    if re.search(r"[^\d\s()+.\-/]", text):
        raise BadNumber(number=number, reason="only digits, spaces, +, -, ( ) and . are allowed")
    digits = re.sub(r"\D", "", text)
    if len(digits) < 3 or len(digits) > 15:
        raise BadNumber(number=number, reason="a number has 3 to 15 digits")
    if text.startswith("+"):
        return "+" + digits
    if digits.startswith("00"):
        return "+" + digits[2:]
    if digits.startswith("0"):
        return f"+{country_code}{digits[1:]}"
    return f"+{country_code}{digits}"


async def run_attempt(ctx, delivery, attempt, spool: Path, log: logging.Logger):
    """Run ``attempt(delivery, workdir)`` for a channel's ``send``: in a scratch
    directory removed afterwards, never raising (an unexpected error is a
    temporary failure), with start and end times filled in and the result logged.
    """
    from .channels import FAILED, TEMPORARY, Outcome

    spool.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=f"{delivery.channel}-{delivery.id}-", dir=spool))
    started = ctx.clock()
    try:
        outcome = await attempt(delivery, workdir)
    except Exception as error:
        log.exception("attempt failed unexpectedly", extra={"delivery": delivery.id})
        outcome = Outcome(TEMPORARY, "error", str(error), disposition=FAILED)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    outcome.started_at = outcome.started_at or started
    outcome.ended_at = outcome.ended_at or ctx.clock()
    log.info("attempt finished", extra={"delivery": delivery.id, "status": outcome.status, "code": outcome.code,
                                        "disposition": outcome.disposition, "pages": outcome.pages,
                                        "billsec": outcome.billsec})
    return outcome
