import json
import logging

from ums import log as ums_log


def _capture(fmt, tmp_path, **extra):
    path = tmp_path / "ums.log"
    ums_log.setup("INFO", fmt, str(path))
    logging.getLogger("ums.test").info("connecting to postgresql://ums:hunter2@db/ums", extra=extra)
    return path.read_text()


def test_secrets_never_reach_the_log(tmp_path):
    text = _capture("plain", tmp_path, password="hunter2", api_key="k-123", note="token=abc")
    assert "hunter2" not in text and "k-123" not in text and "abc" not in text
    assert "postgresql://ums:***@db/ums" in text


def test_json_lines(tmp_path):
    text = _capture("json", tmp_path, service="mas")
    record = json.loads(text.splitlines()[-1])
    assert record["service"] == "mas" and record["level"] == "info"


def test_reopen_after_rotation(tmp_path):
    path = tmp_path / "ums.log"
    ums_log.setup("INFO", "plain", str(path))
    logging.getLogger("ums.test").info("before")
    path.rename(tmp_path / "ums.log.1")
    ums_log.reopen()
    logging.getLogger("ums.test").info("after")
    assert "after" in path.read_text() and "before" not in path.read_text()
