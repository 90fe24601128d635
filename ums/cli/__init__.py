"""The ``ums`` command line. Each command group lives in its own module of this
package and is listed in :data:`COMMAND_MODULES`; every command has ``--help``.

Start-up is lazy (click's LazyGroup pattern): ``ums --help`` lists the commands
from :data:`COMMAND_MODULES` without importing them, and ``ums NAME`` imports
only the module that defines NAME — so nothing heavy (SQLAlchemy, Twisted,
Jinja2…) is loaded before a command needs it. A test checks the table against
the ``COMMANDS`` every module exports, so it cannot drift.

No traceback for a user's mistake: a usage error, a :class:`~ums.errors.UmsError`
(bad configuration, a busy port, no instance here…) or an ``OSError`` (a missing
file or directory, no permission) is one line on stderr and a non-zero exit.
Anything else is a bug: one line and "run with --debug for details", and the
traceback with ``--debug`` or ``UMS_DEBUG=1``.
"""

from __future__ import annotations

import importlib
import os
import pkgutil

import click
from click.exceptions import NoArgsIsHelpError

#: Each top-level command: the module of this package defining it, and its
#: summary for `ums --help` (the first paragraph of its docstring).
COMMAND_MODULES: dict[str, tuple[str, str]] = {
    "alerts": ("alerts", "Operator alerts ([alerts] in ums.cfg): send a test alert."),
    "apikey": ("apikey", "Create, list and revoke API keys (one or more per back-office system)."),
    "billing": ("billing", "Billing from the CDR and the [billing] rate table."),
    "bounce": ("bounce", "Bounces (delivery status notifications) as UMS reads them."),
    "campaign": ("campaign", "Marketing campaigns: create from a file, schedule, watch, pause, resume, cancel."),
    "cdr": ("cdr", "Call detail records (one per delivery attempt)."),
    "check": ("check", "Check that this instance can run, one line per problem."),
    "contacts": ("contacts", "Import and export contacts (CSV, vCard 3.0 and 4.0)."),
    "customer": ("customer", "Look at one customer across every channel."),
    "event": ("event", "List and show events received by EPS."),
    "init": ("suite", "Create the configuration, migrate the database and create the admin user."),
    "journey": ("journey", "Journeys: multi-step flows (send, wait, branch, exit) walked once per customer."),
    "logs": ("logs", "Show the instance's log records (the file `ums run --log-file` writes)."),
    "mailbox": ("mailbox", "Mailboxes: assign them to users, list them, search them."),
    "pause": ("suite", "Pause SERVICE: it stays up but takes no new work, until `ums resume`."),
    "queue": ("queue", "The PASS delivery queue."),
    "resume": ("suite", "Resume a paused SERVICE."),
    "rules": ("rules", "Sieve rules that file, flag, forward, reject or notify on inbound mail."),
    "run": ("suite", "Run the suite, or only the named SERVICES (was, eps, mas, pass), in this process."),
    "send": ("send", "Queue one message; exits 0 once it is durably queued (PASS sends it)."),
    "service": ("service", "Register, list, show, stop, resume and remove EPS services."),
    "status": ("suite", "Show each service: state, address, pid, uptime, and the queue depth."),
    "stop": ("suite", "Stop the running suite gracefully: listeners close, in-flight work finishes "
                      "or is released, and the processes exit."),
    "suppress": ("suppress", "Addresses UMS must never send to (refusals, bounces, operator entries)."),
    "template": ("template", "Message templates (Jinja2: subject, HTML and text parts, per-recipient fields)."),
    "user": ("user", "Users of the web front end and their roles: add, list, passwd, role, remove."),
}

DEBUG_VARIABLE = "UMS_DEBUG"


def _commands_of(module_name: str) -> dict[str, click.Command]:
    module = importlib.import_module(f"{__name__}.{module_name}")
    return {command.name: command for command in getattr(module, "COMMANDS", ())}


def all_commands() -> dict[str, click.Command]:
    """Every command every module of this package exports (imports them all)."""
    found: dict[str, click.Command] = {}
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        found.update(_commands_of(module_info.name))
    return found


def _debugging(ctx: click.Context | None) -> bool:
    flag = ctx.find_root().params.get("debug") if ctx else None
    return bool(flag) or os.environ.get(DEBUG_VARIABLE, "") not in ("", "0")


def _one_line(exc: BaseException) -> str:
    """An error as the single line the user sees."""
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror}"
    return " ".join(str(exc).split()) or type(exc).__name__


class UmsGroup(click.Group):
    """The top-level group: lazy commands, one-line errors."""

    def list_commands(self, ctx):
        return sorted({**COMMAND_MODULES, **self.commands})

    def get_command(self, ctx, name):
        if name in self.commands:
            return self.commands[name]
        module_name, _summary = COMMAND_MODULES.get(name, (None, None))
        commands = _commands_of(module_name) if module_name else all_commands()
        return commands.get(name)

    def format_commands(self, ctx, formatter):
        """The listing from :data:`COMMAND_MODULES`, importing no command module."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            listed = self.commands.get(name) or click.Command(name, help=COMMAND_MODULES[name][1])
            rows.append((name, listed.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except NoArgsIsHelpError:
            raise
        except click.UsageError as exc:
            raise OneLineUsageError(exc) from None

    def invoke(self, ctx):
        from ..errors import UmsError

        try:
            return super().invoke(ctx)
        except NoArgsIsHelpError:
            raise
        except click.UsageError as exc:
            raise OneLineUsageError(exc) from None
        except (click.ClickException, click.exceptions.Exit, click.Abort, BrokenPipeError):
            raise
        except (UmsError, OSError) as exc:
            raise click.ClickException(_one_line(exc)) from None
        except Exception as exc:
            if _debugging(ctx):
                raise
            raise click.ClickException(
                f"unexpected {type(exc).__name__}: {_one_line(exc)} — run with --debug for details") from None


class OneLineUsageError(click.ClickException):
    """A usage error as one line: the problem, then where help is."""

    exit_code = 2

    def __init__(self, error: click.UsageError):
        where = error.ctx.command_path if error.ctx else "ums"
        super().__init__(f"{error.format_message().rstrip('.')} — see `{where} --help`.")


@click.group(cls=UmsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--home", type=click.Path(file_okay=False), envvar="UMS_HOME",
              help="Instance directory holding ums.cfg and var/ (default: the current directory, "
                   "if it is one).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), envvar="UMS_CONFIG",
              help="Configuration file (default: HOME/ums.cfg).")
@click.option("--debug", is_flag=True, envvar=DEBUG_VARIABLE,
              help="Show the traceback of an unexpected error (also UMS_DEBUG=1).")
@click.version_option(package_name="ums")
@click.pass_context
def cli(ctx, home, config_file, debug):
    """UMS — unified messaging over email, fax and voice.

    Start with `ums init`, then `ums run`. `ums COMMAND --help` explains each command.
    """
    from .instance import Instance

    if config_file and not home:  # a configuration named outright: this directory is the home
        home = os.getcwd()
    ctx.obj = Instance(home=home, config_file=config_file)


def main() -> None:
    cli(prog_name="ums")
