import pytest

from ums import config
from ums.errors import ConfigValueError, UnknownConfigKey


def test_shipped_defaults_load_typed(tmp_path):
    cfg = config.load(tmp_path, config_file=tmp_path / "none.cfg")
    assert cfg.get("mas", "port") == 2525
    assert cfg.get("ums", "run") == ["was", "eps", "mas", "pass"]
    assert cfg.database_url == f"sqlite+aiosqlite:///{tmp_path}/var/ums.db"


def test_bad_port_names_the_key(tmp_path):
    (tmp_path / "ums.cfg").write_text("[mas]\nport = abc\n")
    with pytest.raises(ConfigValueError) as caught:
        config.load(tmp_path)
    assert str(caught.value) == "Bad value for mas.port: 'abc' (not a port number)."


def test_environment_overrides_file(tmp_path, monkeypatch):
    (tmp_path / "ums.cfg").write_text("[mas]\nport = 2600\n")
    monkeypatch.setenv("UMS_MAS_PORT", "2700")
    monkeypatch.setenv("UMS_MAS_LOCAL_DOMAINS", "bank.example, ums.local")
    cfg = config.load(tmp_path)
    assert cfg.get("mas", "port") == 2700
    assert cfg.get("mas", "local_domains") == ["bank.example", "ums.local"]


def test_unknown_key_in_file_is_refused(tmp_path):
    (tmp_path / "ums.cfg").write_text("[mas]\nprot = 25\n")
    with pytest.raises(UnknownConfigKey, match="mas.prot"):
        config.load(tmp_path)


def test_every_shipped_key_is_documented():
    """Each key in the shipped file has a comment line right above it (or above its group)."""
    lines = config.DEFAULTS_FILE.read_text().splitlines()
    for number, line in enumerate(lines):
        if line and not line.startswith(("#", "[")):
            previous = [l for l in lines[:number] if l.strip()][-1]
            assert previous.startswith("#") or "=" in previous, f"undocumented key: {line}"
