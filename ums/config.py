"""Configuration: the shipped ``config/ums.cfg`` holds every key and its default.

Lookup order, last wins: the shipped defaults, the instance's ``ums.cfg``
(``$UMS_HOME/ums.cfg`` or ``$UMS_CONFIG``), then ``UMS_<SECTION>_<KEY>``
environment variables. Each key has a type in :data:`TYPES`; a value that does
not convert raises :class:`~ums.errors.ConfigValueError` naming the key.
"""

from __future__ import annotations

import configparser
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .errors import ConfigFileError, ConfigValueError, NoInstance, UnknownConfigKey
from .queue import message_ids

PROJECT_DIR = Path(__file__).resolve().parent.parent
SHIPPED_CONFIG_DIR = PROJECT_DIR / "config"
DEFAULTS_FILE = SHIPPED_CONFIG_DIR / "ums.cfg"
ENV_PREFIX = "UMS_"
#: Sections whose keys are names chosen by the site (a new service or channel).
OPEN_SECTIONS = {"services", "channels"}
NOT_KEYS = {"UMS_HOME", "UMS_CONFIG", "UMS_TEST_DATABASE_URL", "UMS_SOAK", "UMS_CLOCK_SHIFT"}


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected true or false")


def _port(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise ValueError("not a port number") from None
    if not 0 <= number <= 65535:
        raise ValueError("port must be 0 to 65535")
    return number


def _int_at_least(text: str, minimum: int) -> int:
    try:
        number = int(text)
    except ValueError:
        raise ValueError("not a whole number") from None
    if number < minimum:
        raise ValueError(f"must be at least {minimum}")
    return number


def _positive_int(text: str) -> int:
    return _int_at_least(text, 1)


def _non_negative_int(text: str) -> int:
    return _int_at_least(text, 0)


def _positive_float(text: str) -> float:
    try:
        number = float(text)
    except ValueError:
        raise ValueError("not a number") from None
    if number <= 0:
        raise ValueError("must be greater than 0")
    return number


def _words(text: str) -> list[str]:
    return text.replace(",", " ").split()


def _level(text: str) -> str:
    upper = text.strip().upper()
    if upper not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ValueError("expected DEBUG, INFO, WARNING or ERROR")
    return upper


def _one_of(*choices: str) -> Callable[[str], str]:
    def convert(text: str) -> str:
        if text.strip() not in choices:
            raise ValueError("expected one of " + ", ".join(choices))
        return text.strip()

    return convert


def _str(text: str) -> str:
    return text.strip()


def _non_negative(text: str) -> float:
    try:
        number = float(text)
    except ValueError:
        raise ValueError("not a number") from None
    if number < 0:
        raise ValueError("must not be negative")
    return number


def _http_urls(text: str) -> list[str]:
    urls = _words(text)
    for url in urls:
        scheme, _, rest = url.partition("://")
        if scheme.lower() not in ("http", "https") or not rest.strip("/"):
            raise ValueError(f"{url!r} is not an http:// or https:// URL")
    return urls


def _alert_events(text: str) -> list[str]:
    from .alerts import EVENTS

    events = _words(text)
    unknown = [event for event in events if event not in EVENTS]
    if unknown:
        raise ValueError(f"unknown event {unknown[0]!r}; expected some of {', '.join(EVENTS)}")
    return events


def _topics(text: str) -> list[str]:
    """``대출, 카드, 예금`` → ["대출", "카드", "예금"]: comma separated, each short
    enough for a consent record (:data:`ums.preferences.TOPIC_MAX`)."""
    from .preferences import TOPIC_MAX

    topics = [topic.strip() for topic in text.split(",") if topic.strip()]
    for topic in topics:
        if len(topic) > TOPIC_MAX:
            raise ValueError(f"topic {topic!r} is longer than {TOPIC_MAX} characters")
    if len(set(topics)) != len(topics):
        raise ValueError("a topic is named twice")
    return topics


def _channel_numbers(text: str) -> dict[str, float]:
    """``email=50 fax=4`` → {"email": 50.0, "fax": 4.0} (0 means no limit)."""
    numbers = {}
    for pair in _words(text):
        channel, _, value = pair.partition("=")
        if not value:
            raise ValueError(f"expected channel=number, not {pair!r}")
        numbers[channel] = _non_negative(value)
    return numbers


#: Converters for typed keys; any key not named here is a plain string.
TYPES: dict[str, Callable[[str], Any]] = {
    "ums.run": _words,
    "ums.min_free_mb": _non_negative,
    "database.pool_size": _positive_int,
    "database.echo": _bool,
    "log.level": _level,
    "log.format": _one_of("plain", "json"),
    "control.poll_interval": _positive_float,
    "control.stale_after": _positive_float,
    "control.stop_timeout": _positive_float,
    "was.port": _port,
    "was.session_hours": _positive_float,
    "was.login_max_failures": _positive_int,
    "was.login_window": _positive_int,
    "was.login_lockout": _positive_int,
    "was.max_body": _positive_int,
    "eps.http_port": _port,
    "eps.telegram_port": _port,
    "eps.max_frame": _positive_int,
    "eps.max_batch": _positive_int,
    "eps.held_sweep_interval": _positive_float,
    "eps.digest_poll": _positive_float,
    "eps.idle_timeout": _positive_float,
    "eps.request_timeout": _positive_float,
    "mas.port": _port,
    "mas.local_domains": _words,
    "mas.max_message_size": _positive_int,
    "mas.bounce_threshold": _positive_int,
    "mas.bounce_stale_after": _positive_float,
    "mas.auto_create_mailboxes": _bool,
    "mas.refusal_lines": _positive_int,
    "mas.max_recipients": _positive_int,
    "mas.max_mime_depth": _positive_int,
    "mas.max_connections": _positive_int,
    "mas.max_connections_per_client": _positive_int,
    "mas.trusted_authserv_id": _str,
    "pass.concurrency": _positive_int,
    "pass.reserved_concurrency": _non_negative_int,
    "pass.urgent_poll": _positive_float,
    "pass.poll_interval": _positive_float,
    "pass.lease_seconds": _positive_int,
    "pass.claim_batch": _positive_int,
    "pass.write_batch": _positive_int,
    "pass.write_interval": _positive_float,
    "pass.retry_base": _positive_float,
    "pass.retry_max": _positive_float,
    "pass.default_expiry": _positive_int,
    "pass.misfire_grace": _positive_int,
    "pass.expand_batch": _positive_int,
    "pass.journey_interval": _positive_float,
    "pass.journey_batch": _positive_int,
    "pass.database_process": _bool,
    "pass.channel_concurrency": _channel_numbers,
    "pass.channel_rate": _channel_numbers,
    "pass.channel_per_hour": _channel_numbers,
    "pass.lane_rate": _channel_numbers,
    "pass.lane_per_hour": _channel_numbers,
    "pass.destination_concurrency": _positive_int,
    "pass.destination_rate": _non_negative,
    "email.relay_port": _port,
    "email.starttls": _bool,
    "email.connections": _positive_int,
    "email.reserved_connections": _non_negative_int,
    "email.timeout": _positive_float,
    "fax.driver": _one_of("t37", "hylafax"),
    "fax.compression": _one_of("g3", "g3-2d", "g4"),
    "fax.render_timeout": _positive_float,
    "fax.t37_port": _port,
    "fax.t37_timeout": _positive_float,
    "fax.hylafax_port": _port,
    "fax.hylafax_max_dials": _positive_int,
    "fax.hylafax_wait": _positive_float,
    "fax.hylafax_poll": _positive_float,
    "fax.hylafax_timeout": _positive_float,
    "voice.driver": _one_of("sip", "asterisk"),
    "voice.language": _one_of("auto", "ko", "en"),
    "voice.speed": _positive_int,
    "voice.tts_timeout": _positive_float,
    "voice.ring_timeout": _positive_float,
    "voice.max_call_seconds": _positive_float,
    "voice.refusal_wait": _positive_float,
    "voice.asterisk_wait": _positive_float,
    "alerts.webhook_url": _http_urls,
    "alerts.email_to": _words,
    "alerts.events": _alert_events,
    "alerts.relay_unreachable_minutes": _non_negative,
    "alerts.retries": _non_negative_int,
    "alerts.retry_base": _positive_float,
    "alerts.timeout": _positive_float,
    "alerts.bounce_rate_threshold": _non_negative,
    "alerts.refusal_rate_threshold": _non_negative,
    "alerts.rate_window_minutes": _positive_float,
    "alerts.rate_min_sent": _non_negative_int,
    "alerts.rate_check_seconds": _positive_float,
    "preferences.topics": _topics,
    "policy.advertising_per_day": _non_negative_int,
    "policy.advertising_per_week": _non_negative_int,
}


def register_types(types: dict[str, Callable[[str], Any]]) -> None:
    """Let a service declare the types of its own keys (in its module)."""
    TYPES.update(types)


@dataclass
class Config:
    """Typed, read-only view of the merged configuration."""

    home: Path
    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    def get(self, section: str, key: str) -> Any:
        return self.values[section][key]

    def section(self, section: str) -> dict[str, Any]:
        return dict(self.values.get(section, {}))

    @property
    def var_dir(self) -> Path:
        return Path(self.values["ums"]["var_dir"])

    @property
    def database_url(self) -> str:
        return self.values["database"]["url"]

    def with_overrides(self, overrides: dict[str, str]) -> "Config":
        """A copy with some ``section.key`` values replaced (used by tests and CLI flags)."""
        return load(self.home, overrides=overrides, config_file=self.sources.get("file"))


def instance_home(home: str | os.PathLike | None = None, must_exist: bool = True) -> Path:
    """``home``, else ``UMS_HOME``, else the current directory — which must be
    an instance unless ``must_exist`` is false (``ums init``) or ``UMS_CONFIG``
    names the configuration. Never a guess: otherwise
    :class:`~ums.errors.NoInstance`, so a command run in the wrong place
    creates nothing there."""
    directory = Path(home or os.environ.get("UMS_HOME") or os.getcwd()).resolve()
    if must_exist and not os.environ.get("UMS_CONFIG") and not is_instance(directory):
        raise NoInstance(path=directory)
    return directory


def is_instance(directory: Path) -> bool:
    """An instance has its ums.cfg (`ums init` writes it) or, made with an outside
    configuration file, its database under var/."""
    return (directory / "ums.cfg").is_file() or (directory / "var" / "ums.db").is_file()


def instance_config_file(home: Path) -> Path:
    return Path(os.environ.get("UMS_CONFIG") or home / "ums.cfg")


def _read(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
    except (OSError, configparser.Error, UnicodeDecodeError) as exc:
        raise ConfigFileError(path=path, reason=str(exc).splitlines()[0]) from None
    return parser


def _env_overrides(known: dict[str, dict[str, str]]) -> dict[str, str]:
    found = {}
    for name, value in os.environ.items():
        if not name.startswith(ENV_PREFIX) or name in NOT_KEYS:
            continue
        rest = name[len(ENV_PREFIX):].lower()
        section, _, key = rest.partition("_")
        if section in known and key in known[section]:
            found[f"{section}.{key}"] = value
    return found


def load(
    home: Path | None = None,
    overrides: dict[str, str] | None = None,
    config_file: str | os.PathLike | None = None,
) -> Config:
    """Merge defaults, the instance file, the environment and explicit overrides."""
    home = Path(home or instance_home()).resolve()
    raw: dict[str, dict[str, str]] = {}
    defaults = _read(DEFAULTS_FILE)
    for section in defaults.sections():
        raw[section] = dict(defaults[section])
    file_path = Path(config_file) if config_file else instance_config_file(home)
    sources = {}
    if file_path.exists():
        sources["file"] = str(file_path)
        for section, key, value in _items(_read(file_path)):
            if section in OPEN_SECTIONS:
                raw.setdefault(section, {})[key] = value
                continue
            if key not in raw.get(section, {}):
                raise UnknownConfigKey(key=f"{section}.{key}", source=file_path)
            raw[section][key] = value
    for dotted, value in {**_env_overrides(raw), **(overrides or {})}.items():
        section, _, key = dotted.partition(".")
        if key not in raw.get(section, {}) and section not in OPEN_SECTIONS:
            raise UnknownConfigKey(key=dotted, source="overrides")
        raw.setdefault(section, {})[key] = value
    config = Config(home=home, values=_typed(raw, home), sources=sources)
    message_ids.use_config(config)   # deliveries are made where only a connection is at hand
    return config


def _items(parser: configparser.ConfigParser):
    for section in parser.sections():
        for key, value in parser[section].items():
            yield section, key, value


def _typed(raw: dict[str, dict[str, str]], home: Path) -> dict[str, dict[str, Any]]:
    var_dir = raw["ums"]["var_dir"].replace("{home}", str(home))
    values: dict[str, dict[str, Any]] = {}
    for section, keys in raw.items():
        values[section] = {}
        for key, text in keys.items():
            text = text.replace("{home}", str(home)).replace("{var}", var_dir)
            convert = TYPES.get(f"{section}.{key}", _str)
            try:
                values[section][key] = convert(text)
            except ValueError as exc:
                raise ConfigValueError(key=f"{section}.{key}", value=text, reason=exc) from None
    return values
