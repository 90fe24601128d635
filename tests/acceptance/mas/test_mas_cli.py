"""An operator manages MAS rules with `ums rules …`, runs MAS and PASS, and
sees a refusal land: a refusal that answers nothing UMS sent only asks the
customer to confirm; answering that confirmation suppresses them, for
advertising, on every channel (`ums suppress list` shows the scope)."""

from __future__ import annotations

import smtplib
import time

from aiosmtpd.controller import Controller

from tests.acceptance.cli import spawn_run, stop, ums
from tests.acceptance.relay import Recorder, wait_for
from tests.helpers import free_port, port_is_free
from tests.unit.mas import mas_samples as samples

REPLIES = 'require ["fileinto"];\nif header :contains "subject" "Re:" { fileinto "Replies"; }\n'
BROKEN = 'require "fileinto";\nif header :is "subject" {\n  keep;\n}\n'


def test_rules_commands_and_a_refusal_through_a_running_mas(tmp_path):
    port = free_port()
    relay = Recorder()
    controller = Controller(relay, hostname="127.0.0.1", port=free_port())
    controller.start()
    (tmp_path / "ums.cfg").write_text(
        f"[mas]\nport = {port}\n[control]\npoll_interval = 0.2\n[email]\nrelay_port = {controller.port}\n"
        "[pass]\npoll_interval = 0.2\nwrite_interval = 0.02\n")
    (tmp_path / "replies.sieve").write_text(REPLIES)
    (tmp_path / "broken.sieve").write_text(BROKEN)
    (tmp_path / "reply.eml").write_bytes(samples.reply("a@customer.example", "sales@ums.local"))
    (tmp_path / "customers.csv").write_text("customer_id,name,email,fax\nC1,김민수,kim@customer.example,02-555-0101\n")
    assert ums(tmp_path, "init").returncode == 0
    assert ums(tmp_path, "contacts", "import", "customers.csv").returncode == 0

    tested = ums(tmp_path, "rules", "test", "replies.sieve", "reply.eml")
    assert tested.returncode == 0 and tested.stdout.strip() == "fileinto 'Replies'"
    refused = ums(tmp_path, "rules", "set", "broken", "broken.sieve")
    assert refused.returncode == 1
    assert refused.stderr.strip() == ("Error: Sieve script error at line 2, column 4: "
                                      "header expects a list of header names and a list of keys.")
    assert ums(tmp_path, "rules", "set", "replies", "replies.sieve").returncode == 0
    listed = ums(tmp_path, "rules", "list")
    assert "replies" in listed.stdout and "broken" not in listed.stdout

    server = spawn_run(tmp_path, "mas", "pass")
    try:
        deadline = time.monotonic() + 15
        while port_is_free(port) and time.monotonic() < deadline:
            assert server.poll() is None, server.stdout.read()
            time.sleep(0.1)
        # a refusal that answers nothing UMS sent: nobody is suppressed, the customer is asked
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.sendmail("kim@customer.example", ["news@ums.local"],
                            samples.euc_kr_refusal("kim@customer.example", "news@ums.local"))
        assert "kim@customer.example" not in ums(tmp_path, "suppress", "list").stdout
        [asked] = wait_for(lambda: relay.messages_to("kim@customer.example"))
        assert asked["List-Unsubscribe"]

        # the customer answers the confirmation: suppressed for advertising, email and fax
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.sendmail("kim@customer.example", ["news@ums.local"], samples.euc_kr_refusal(
                "kim@customer.example", "news@ums.local", in_reply_to=asked["Message-ID"]))
        suppressed = ums(tmp_path, "suppress", "list")
        lines = [line.split() for line in suppressed.stdout.splitlines()]
        assert ["email", "kim@customer.example", "refusal", "advertising", "mas:reply"] in [l[:5] for l in lines]
        assert ["fax", "025550101", "refusal", "advertising", "mas:reply"] in [l[:5] for l in lines]
        assert lines[0][:6] == ["channel", "address", "reason", "scope", "source", "evidence"]
        [kim] = [line for line in suppressed.stdout.splitlines() if "kim@customer.example" in line]
        assert f"confirmed by reply to {asked['Message-ID']}" in kim
    finally:
        stop(tmp_path, server)
        controller.stop()

    # an operator's entry stops everything unless they say advertising only
    added = ums(tmp_path, "suppress", "add", "ads-only@customer.example", "--scope", "advertising")
    assert added.returncode == 0 and added.stdout.strip() == "ads-only@customer.example suppressed (advertising only)"
    assert ums(tmp_path, "suppress", "add", "all@customer.example").stdout.strip() == \
        "all@customer.example suppressed (all sends)"
    listed = [line.split()[:4] for line in ums(tmp_path, "suppress", "list").stdout.splitlines()]
    assert ["email", "ads-only@customer.example", "manual", "advertising"] in listed
    assert ["email", "all@customer.example", "manual", "all"] in listed
    refused = ums(tmp_path, "suppress", "add", "x@customer.example", "--scope", "some")
    assert refused.returncode != 0 and "some" in refused.stderr

    assert ums(tmp_path, "rules", "remove", "replies").returncode == 0
    assert ums(tmp_path, "rules", "remove", "replies").returncode == 1
