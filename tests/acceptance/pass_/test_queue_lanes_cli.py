"""`ums queue stats` shows the pending deliveries of each priority lane — the
operator sees at a glance whether alerts wait, apart from a campaign backlog."""

from __future__ import annotations

import json
from pathlib import Path

from tests.acceptance.cli import ums


def ok(home: Path, *args: str) -> str:
    result = ums(home, *args)
    assert result.returncode == 0, f"ums {' '.join(args)}: {result.stderr}"
    return result.stdout


def test_queue_stats_counts_pending_deliveries_by_lane(tmp_path):
    home = tmp_path
    (home / "notice.json").write_text(json.dumps({
        "name": "notice", "channel": "email", "kind": "transactional", "subject": "안내", "body_text": "안내드립니다.",
    }, ensure_ascii=False))
    (home / "offer.json").write_text(json.dumps({
        "name": "offer", "channel": "email", "kind": "advertising", "subject": "혜택", "body_text": "혜택 안내",
        "sender_name": "UMS은행", "sender_contact": "1588-0000",
    }, ensure_ascii=False))
    ok(home, "init")
    ok(home, "template", "add", "notice.json")
    ok(home, "template", "add", "offer.json")
    for n in range(2):
        ok(home, "send", "--to", f"n{n}@example.com", "--template", "notice")
    ok(home, "send", "--to", "ad@example.com", "--template", "offer")

    stats = json.loads(ok(home, "queue", "stats", "--json"))
    assert stats["lanes"] == {"urgent": 0, "notice": 2, "marketing": 1}
    assert "pending by lane: urgent 0, notice 2, marketing 1" in ok(home, "queue", "stats")
