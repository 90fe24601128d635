"""Driving the installed `ums` command as an operator does, for the acceptance tests."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from ums.clock import SHIFT_VARIABLE

#: the installed console script, not an import of the package
UMS = str(Path(sys.executable).parent / "ums")


def environment(home: Path, shift: float | None = None) -> dict:
    """This process's environment without UMS_* settings (but the test clock's
    shift, or ``shift`` seconds instead), pointed at ``home``."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("UMS_") or key == SHIFT_VARIABLE}
    if shift is not None:
        env[SHIFT_VARIABLE] = str(shift)
    env.update(UMS_HOME=str(home), LANG="C.UTF-8", COLUMNS="160")
    return env


def ums(home: Path, *args: str, timeout: float = 60, shift: float | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([UMS, *args], cwd=home, env=environment(home, shift),
                          capture_output=True, text=True, timeout=timeout)


async def ums_off_loop(home: Path, *args: str, **options) -> subprocess.CompletedProcess:
    """:func:`ums` from an async test, in a thread: services under test run on
    the test's event loop, and a command waiting on a lock one of them holds
    must not stop it from finishing."""
    return await asyncio.to_thread(ums, home, *args, **options)


def spawn_run(home: Path, *services: str, shift: float | None = None) -> subprocess.Popen:
    """`ums run [SERVICE…]` in the background (the caller waits for its ports)."""
    return subprocess.Popen([UMS, "run", *services], cwd=home, env=environment(home, shift),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop(home: Path, server: subprocess.Popen, shift: float | None = None) -> bool:
    """`ums stop`, then wait for the server; killed if it hangs. True if it ended by itself."""
    ums(home, "stop", shift=shift)
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
        return False
    return True


@contextmanager
def running(home: Path, *services: str, shift: float | None = None):
    """`ums run [SERVICE…]` for the duration of the block; `ums stop` ends it
    (and the test fails if the process does not end within 20 s)."""
    server = spawn_run(home, *services, shift=shift)
    try:
        yield server
    finally:
        if not stop(home, server, shift):
            pytest.fail(f"`ums run {' '.join(services)}` did not end on `ums stop`")


def command_paths(group=None, prefix=()):
    """Every command and subcommand of `ums` as (path, command), loading each
    lazily listed group the way `ums NAME` does."""
    import click

    from ums.cli import cli

    group = group or cli
    ctx = click.Context(group, info_name=prefix[-1] if prefix else "ums")
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        yield (*prefix, name), command
        if isinstance(command, click.Group):
            yield from command_paths(command, (*prefix, name))
