"""`ums bounce parse FILE` shows what MAS reads from a bounce, as JSON, in a
directory where `ums init` never ran (no database, nothing stored)."""

from __future__ import annotations

import json
import subprocess

from tests.acceptance.cli import UMS, environment, ums
from tests.unit.mas import mas_samples as samples

GMAIL_BLOCK = b"550 5.7.1 [203.0.113.5] this message is likely unsolicited mail and has been blocked - gsmtp"


def test_bounce_parse_prints_each_kind_and_stores_nothing(tmp_path):
    unknown = samples.dsn("lee@customer.example", "<sent-1@ums.local>", status="5.1.1")
    (tmp_path / "unknown.eml").write_bytes(unknown)
    blocked = samples.dsn("kim@gmail.example", "<sent-2@ums.local>", status="5.7.1").replace(
        b"550 5.7.1 <kim@gmail.example>: Recipient address rejected: User unknown", GMAIL_BLOCK)
    (tmp_path / "blocked.eml").write_bytes(blocked)
    (tmp_path / "reply.eml").write_bytes(samples.reply("a@customer.example", "sales@ums.local"))
    (tmp_path / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00")

    parsed = ums(tmp_path, "bounce", "parse", "unknown.eml")
    assert parsed.returncode == 0, parsed.stderr
    assert json.loads(parsed.stdout) == {
        "permanent": [{"address": "lee@customer.example", "status": "5.1.1",
                       "reason": "550 5.1.1 <lee@customer.example>: Recipient address rejected: User unknown"}],
        "temporary": [], "ignored": []}

    from_stdin = subprocess.run([UMS, "bounce", "parse", "-"], input=blocked, cwd=tmp_path,
                                env=environment(tmp_path), capture_output=True, timeout=60)
    assert from_stdin.returncode == 0, from_stdin.stderr
    [ignored] = json.loads(from_stdin.stdout)["ignored"]
    assert (ignored["address"], ignored["status"]) == ("kim@gmail.example", "5.7.1")
    assert "likely unsolicited mail" in ignored["reason"]

    for name, why in [("reply.eml", "is not a bounce"), ("photo.jpg", "is not an email message"),
                      ("missing.eml", "cannot read message")]:
        refused = ums(tmp_path, "bounce", "parse", name)
        assert refused.returncode == 1 and refused.stdout == ""
        [line] = refused.stderr.splitlines()
        assert why in line and name in line
    assert "ignored" in ums(tmp_path, "bounce", "parse", "--help").stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocked.eml", "photo.jpg", "reply.eml", "unknown.eml"]
