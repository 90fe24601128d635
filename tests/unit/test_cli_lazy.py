"""The `ums` group: its lazy command table matches what the modules define,
`ums --help` imports no command module, and an unexpected error is one line
(its traceback only with --debug)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import click
from click.testing import CliRunner

from ums.cli import COMMAND_MODULES, UmsGroup, all_commands

#: a file in a directory no one has made
MISSING = str(Path(tempfile.gettempdir()) / f"ums-absent-{uuid.uuid4().hex}" / "dir" / "x")


def test_the_table_lists_every_command_with_its_own_summary():
    defined = all_commands()
    assert sorted(COMMAND_MODULES) == sorted(defined)
    for name, (module, summary) in COMMAND_MODULES.items():
        command = defined[name]
        assert command.callback.__module__ == f"ums.cli.{module}", name
        assert click.Command(name, help=summary).get_short_help_str(1000) == command.get_short_help_str(1000), name


def test_help_imports_no_command_module_nor_anything_heavy():
    probe = ("import sys; from ums.cli import cli\n"
             "try:\n    cli(['--help'], prog_name='ums')\nexcept SystemExit:\n    pass\n"
             "print('LOADED:' + ' '.join(sorted(m for m in sys.modules if m.startswith(('ums.cli.', 'sqlalchemy', 'twisted', "
             "'alembic', 'jinja2', 'aiosmtpd', 'lxml', 'rich')))))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert "Commands:" in loaded
    assert loaded.splitlines()[-1] == "LOADED:"


@click.group(cls=UmsGroup)
@click.option("--debug", is_flag=True)
def toy(debug):
    """A group with the same error handling as `ums`."""


@toy.command()
def crash():
    """Fail as a bug would."""
    raise RuntimeError("something\nbroke")


@toy.command()
def missing():
    """Read a file that is not there."""
    open(MISSING)


def test_an_unexpected_error_is_one_line_unless_debugging(monkeypatch):
    monkeypatch.delenv("UMS_DEBUG", raising=False)
    runner = CliRunner()
    plain = runner.invoke(toy, ["crash"])
    assert plain.exit_code == 1
    assert plain.output.splitlines() == [
        "Error: unexpected RuntimeError: something broke — run with --debug for details"]
    debugging = runner.invoke(toy, ["--debug", "crash"])
    assert isinstance(debugging.exception, RuntimeError)  # the traceback is shown, not swallowed
    monkeypatch.setenv("UMS_DEBUG", "1")
    assert isinstance(runner.invoke(toy, ["crash"]).exception, RuntimeError)


def test_an_os_error_is_one_line_even_when_debugging():
    result = CliRunner().invoke(toy, ["--debug", "missing"])
    assert result.exit_code == 1
    assert result.output.splitlines() == [f"Error: {MISSING}: No such file or directory"]


def test_a_group_without_a_command_shows_its_help_not_an_error():
    from ums.cli import cli

    for args in ([], ["user"]):
        result = CliRunner().invoke(cli, args, prog_name="ums")
        assert result.output.startswith("Usage: ums") and "Commands:" in result.output, args
        assert "Error" not in result.output
