"""An operator manages MAS rules with `ums rules …`, runs MAS, and sees a refusal land."""

from __future__ import annotations

import smtplib
import time

from tests.acceptance.cli import spawn_run, stop, ums
from tests.helpers import free_port, port_is_free
from tests.unit.mas import mas_samples as samples

REPLIES = 'require ["fileinto"];\nif header :contains "subject" "Re:" { fileinto "Replies"; }\n'
BROKEN = 'require "fileinto";\nif header :is "subject" {\n  keep;\n}\n'


def test_rules_commands_and_a_refusal_through_a_running_mas(tmp_path):
    port = free_port()
    (tmp_path / "ums.cfg").write_text(f"[mas]\nport = {port}\n[control]\npoll_interval = 0.2\n")
    (tmp_path / "replies.sieve").write_text(REPLIES)
    (tmp_path / "broken.sieve").write_text(BROKEN)
    (tmp_path / "reply.eml").write_bytes(samples.reply("a@customer.example", "sales@ums.local"))
    assert ums(tmp_path, "init").returncode == 0

    tested = ums(tmp_path, "rules", "test", "replies.sieve", "reply.eml")
    assert tested.returncode == 0 and tested.stdout.strip() == "fileinto 'Replies'"
    refused = ums(tmp_path, "rules", "set", "broken", "broken.sieve")
    assert refused.returncode == 1
    assert refused.stderr.strip() == ("Error: Sieve script error at line 2, column 4: "
                                      "header expects a list of header names and a list of keys.")
    assert ums(tmp_path, "rules", "set", "replies", "replies.sieve").returncode == 0
    listed = ums(tmp_path, "rules", "list")
    assert "replies" in listed.stdout and "broken" not in listed.stdout

    server = spawn_run(tmp_path, "mas")
    try:
        deadline = time.monotonic() + 15
        while port_is_free(port) and time.monotonic() < deadline:
            assert server.poll() is None, server.stdout.read()
            time.sleep(0.1)
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.sendmail("kim@customer.example", ["news@ums.local"],
                            samples.euc_kr_refusal("kim@customer.example", "news@ums.local"))
        suppressed = ums(tmp_path, "suppress", "list")
        assert "kim@customer.example" in suppressed.stdout and "refusal" in suppressed.stdout
    finally:
        stop(tmp_path, server)

    assert ums(tmp_path, "rules", "remove", "replies").returncode == 0
    assert ums(tmp_path, "rules", "remove", "replies").returncode == 1
