"""The ``ums`` command line. Each command group lives in its own module and is
registered here; every command has ``--help``, and every UMS error becomes one
line on stderr with a non-zero exit."""

from __future__ import annotations

import click

from ..errors import UmsError
from .common import Obj


class UmsGroup(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UmsError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=UmsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--home", type=click.Path(file_okay=False), envvar="UMS_HOME",
              help="Instance directory holding ums.cfg and var/ (default: current directory).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), envvar="UMS_CONFIG",
              help="Configuration file (default: HOME/ums.cfg).")
@click.version_option(package_name="ums")
@click.pass_context
def cli(ctx, home, config_file):
    """UMS — unified messaging over email, fax and voice.

    Start with `ums init`, then `ums run`. `ums COMMAND --help` explains each command.
    """
    ctx.obj = Obj(home=home, config_file=config_file)


def _register() -> None:
    """Every module of this package that defines ``COMMANDS`` contributes them."""
    import importlib
    import pkgutil

    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        for command in getattr(module, "COMMANDS", ()):
            cli.add_command(command)


_register()


def main() -> None:
    cli(prog_name="ums")
