"""Every error UMS raises on purpose derives from :class:`UmsError`.

An error's docstring is its message; keyword arguments fill its placeholders,
so ``ConfigValueError(key="mas.port", value="abc", reason="not a number")``
reads as one clear line.
"""


class UmsError(Exception):
    """UMS failed."""

    def __init__(self, message: str | None = None, **fields):
        self.fields = fields
        text = message or (self.__doc__ or "").strip().format(**fields)
        super().__init__(text)


class ConfigError(UmsError):
    """Configuration error."""


class ConfigValueError(ConfigError):
    """Bad value for {key}: {value!r} ({reason})."""


class UnknownConfigKey(ConfigError):
    """Unknown configuration key {key} in {source}."""


class ConfigFileError(ConfigError):
    """Cannot read configuration file {path}: {reason}."""


class DatabaseError(UmsError):
    """Database error: {reason}."""


class DatabaseNotReady(DatabaseError):
    """The database at {url} is not initialised; run `ums init` first."""


class DatabaseOutdated(DatabaseNotReady):
    """The database at {url} is at migration {revision}, this UMS needs {head}; run `ums init` to migrate it."""


class UnknownService(UmsError):
    """Unknown service {name!r}; known services: {known}."""


class ServiceLoadError(UmsError):
    """Cannot load service {name!r} from {target!r}: {reason}."""


class ServiceStartError(UmsError):
    """Service {name} could not start: {reason}."""


class NotRunning(UmsError):
    """No UMS process is running here."""


class NoInstance(UmsError):
    """No UMS instance in {path} (no ums.cfg there); use --home DIR, UMS_HOME or cd into one."""


class CannotListen(UmsError):
    """{service} cannot listen on {host}:{port}: {reason} Set {variable} or [{section}] {key}."""


class BadJourney(UmsError):
    """Bad journey definition{where}: {reason}."""


class UnknownJourney(UmsError):
    """No journey named {name!r}; `ums journey list` shows them."""


class JourneyExists(UmsError):
    """A journey named {name!r} already exists (stop it, or pick another name)."""


class JourneyNotActive(UmsError):
    """Journey {name!r} is {state}: customers enter only an active journey."""
