"""Enqueueing a campaign: audience expansion into deliveries, recipients per
second and peak RSS, for growing audiences (each size in a fresh process, so
peak RSS is per size and shows whether memory grows with the audience).

    .venv/bin/python bench/pass_enqueue.py [--sizes 100000,1000000] [--database sqlite|postgresql|both]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sqlalchemy import text  # noqa: E402

from pass_campaign import drop_database, prepare_database  # noqa: E402
from ums import campaigns  # noqa: E402
from ums.db import connect  # noqa: E402
from ums.store import campaigns as campaign_store  # noqa: E402
from ums.store import templates  # noqa: E402

SEED = {
    "sqlite": """WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < :count)
                 INSERT INTO contacts (name, email, grade) SELECT 'c' || x, 'user' || x || '@example.com', 'VIP' FROM n""",
    "postgresql": """INSERT INTO contacts (name, email, grade)
                     SELECT 'c' || x, 'user' || x || '@example.com', 'VIP' FROM generate_series(1, :count) AS x""",
}


async def child(kind: str, size: int, workdir: Path) -> dict:
    url = await prepare_database(kind, workdir)
    db = connect(url)
    now = datetime.now(timezone.utc)
    async with db.begin() as conn:
        await conn.execute(text(SEED[kind]), {"count": size})
        await templates.save(conn, "bench", "email", now, subject="s", body_text="t")
        spec = campaigns.from_dict({"name": "bench", "kind": "transactional", "template": "bench",
                                    "audience": {"segment": {"grade": "VIP"}}})
        campaign_id = await campaigns.create(conn, spec, now)
        await campaign_store.set_state(conn, campaign_id, "running", ("draft",))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    total = 0
    while True:
        async with db.begin() as conn:
            campaign = await campaign_store.get(conn, campaign_id)
            added = await campaign_store.expand_batch(conn, campaign, now, 20000, "ums.local")
        if not added:
            break
        total += added
    elapsed = time.perf_counter() - started
    await db.close()
    await drop_database(kind, url)
    return {"kind": kind, "size": size, "enqueued": total, "per_second": total / elapsed,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "rss_before_mb": rss_before / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "SIZE"))
    args = parser.parse_args()
    if args.child:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(asyncio.run(child(args.child[0], int(args.child[1]), Path(tmp)))))
        return
    kinds = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    for kind in kinds:
        for size in (int(s) for s in args.sizes.split(",")):
            out = subprocess.run([sys.executable, __file__, "--child", kind, str(size)],
                                 capture_output=True, text=True, env=os.environ)
            if out.returncode:
                print(out.stderr[-2000:])
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{kind:>10} {r['size']:>9} recipients: {r['per_second']:9.0f} recipients/s enqueued, "
                  f"peak RSS {r['peak_rss_mb']:.0f} MB (after seeding {r['rss_before_mb']:.0f} MB)", flush=True)


if __name__ == "__main__":
    main()
