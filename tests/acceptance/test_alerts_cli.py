"""`ums alerts test`, as an operator checks a new webhook: one signed
alert.test reaches a real loopback receiver and the command says "sent";
a destination that does not answer, or no destination, is one line and exit 1."""

from __future__ import annotations

import json
import subprocess

from tests.acceptance.cli import UMS, environment
from tests.helpers import free_port
from tests.integration.webhook_receiver import SECRET, Receiver, signature_is_valid


def alerts_test(home, **settings) -> subprocess.CompletedProcess:
    env = {**environment(home), **settings}
    return subprocess.run([UMS, "alerts", "test"], cwd=home, env=env, capture_output=True, text=True, timeout=60)


def instance(tmp_path):
    (tmp_path / "ums.cfg").write_text("[ums]\nrun = pass\n")
    return tmp_path


def test_a_test_alert_reaches_the_webhook_signed(tmp_path):
    home = instance(tmp_path)
    with Receiver() as receiver:
        result = alerts_test(home, UMS_ALERTS_WEBHOOK_URL=receiver.url, UMS_ALERTS_WEBHOOK_SECRET=SECRET)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"{receiver.url}: sent"
        [request] = receiver.events("alert.test")
    assert signature_is_valid(request) and not signature_is_valid(request, secret="not-the-secret")
    assert json.loads(request["body"])["data"]["home"] == str(home.resolve())
    assert SECRET not in result.stdout + result.stderr


def test_a_dead_destination_or_none_is_one_line_and_exit_1(tmp_path):
    home = instance(tmp_path)
    dead = f"http://127.0.0.1:{free_port()}/hook"
    failed = alerts_test(home, UMS_ALERTS_WEBHOOK_URL=dead, UMS_ALERTS_WEBHOOK_SECRET=SECRET)
    assert failed.returncode == 1
    assert failed.stdout.startswith(f"{dead}: failed: URLError") and "Connection refused" in failed.stdout
    assert failed.stderr.strip() == "Error: 1 of 1 alert destinations failed."
    none = alerts_test(home)
    assert none.returncode == 1 and none.stderr.strip().startswith("Error: No alert destination")
    unsigned = alerts_test(home, UMS_ALERTS_WEBHOOK_URL=dead)
    assert unsigned.returncode == 1 and "without webhook_secret" in unsigned.stderr
    bad_url = alerts_test(home, UMS_ALERTS_WEBHOOK_URL="hooks.example/ums", UMS_ALERTS_WEBHOOK_SECRET=SECRET)
    assert bad_url.returncode == 1 and len(bad_url.stderr.strip().splitlines()) == 1
    assert "alerts.webhook_url" in bad_url.stderr and "not an http:// or https:// URL" in bad_url.stderr
