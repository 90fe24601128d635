"""``/metrics`` in the Prometheus text format: queue, mailbox and suppression
figures from the database, and this process's request counts."""

from __future__ import annotations

from ums.store import web
from ums.web import Router

from ..http import Page, Response
from ..roles import ALL_ROLES

router = Router(roles=ALL_ROLES)


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def family(name: str, help_text: str, kind: str, samples: list[tuple[dict, float]]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    for labels, value in samples:
        label_text = ",".join(f'{key}="{_escape(val)}"' for key, val in labels.items())
        lines.append(f"{name}{{{label_text}}} {value}" if label_text else f"{name} {value}")
    return lines


@router.get("/metrics", roles=None)
async def metrics(page: Page):
    async with page.app.db.connect() as conn:
        deliveries = await web.delivery_counts(conn)
        mailbox = await web.mailbox_counts(conn)
        suppressed = await web.suppression_counts(conn)
    lines = []
    lines += family("ums_deliveries", "Deliveries by channel and state.", "gauge",
                    [({"channel": c, "state": s}, n) for c, s, n in deliveries])
    lines += family("ums_mailbox_messages", "Stored inbound messages by medium.", "gauge",
                    [({"media": m}, n) for m, n in mailbox])
    lines += family("ums_suppressions", "Suppressed addresses by channel.", "gauge",
                    [({"channel": c}, n) for c, n in suppressed])
    lines += family("ums_was_requests_total", "HTTP requests answered by this WAS process.", "counter",
                    [({"status": str(status)}, n) for status, n in sorted(page.app.request_counts.items())])
    return Response("\n".join(lines) + "\n", 200, "text/plain; version=0.0.4; charset=utf-8")
