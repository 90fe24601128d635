"""Which instance a command works on: ``--home``, ``UMS_HOME`` or the current
directory — and only if that directory is an instance (has its ``ums.cfg``).
Anywhere else the command stops with :class:`~ums.errors.NoInstance` before it
touches anything, so a mistyped home or the wrong directory never gets a stray
``var/ums.db``; only `ums init` (which sets :attr:`Instance.may_create`) makes
a directory an instance.
"""

from __future__ import annotations

from pathlib import Path

from .. import config as ums_config
from .common import Obj


class Instance(Obj):
    """The shared command object, insisting its home is an instance."""

    #: `ums init` may work on a directory that is not an instance yet.
    may_create = False

    @property
    def home_dir(self) -> Path:
        named_config = bool(self.config_file)
        return ums_config.instance_home(self.home, must_exist=not (self.may_create or named_config))
