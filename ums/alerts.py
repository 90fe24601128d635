"""Operator alerts: what an operator must hear of without watching the logs.

Events (``[alerts] events`` chooses among them):

* ``campaign.completed`` — a campaign finished; ``campaign.failed`` — it
  finished with nothing delivered (every delivery failed or expired);
* ``service.paused`` — a running service was paused (``ums pause``);
  ``service.stopped`` — a service stopped (``ums stop``, SIGTERM);
* ``relay.unreachable`` — a channel's relay or gateway has not answered for
  ``[alerts] relay_unreachable_minutes``; ``relay.reachable`` — it answers
  again after such an alert;
* ``bounce_rate.exceeded`` / ``refusal_rate.exceeded`` — over the last
  ``rate_window_minutes``, permanent bounces (refusals: refusal, unsubscribe,
  complaint) per delivery the relay accepted went over
  ``bounce_rate_threshold`` (``refusal_rate_threshold``), with at least
  ``rate_min_sent`` delivered; told once, and again only after the rate fell
  back under. PASS looks every ``rate_check_seconds``, counting rows by id
  (:mod:`ums.store.alert_figures`), so the window starts when PASS does.

Each alert goes to every destination configured: ``webhook_url`` (HTTP POST
of a JSON body) and ``email_to`` (a plain-text mail through the ``[email]``
relay). A webhook is signed as Stripe signs its own, so a receiver knows it
came from this UMS and is not a replay::

    X-UMS-Timestamp: 1764670925                 (unix seconds when sent)
    X-UMS-Signature: sha256=<hex HMAC-SHA256 over "<timestamp>.<body>", key [alerts] webhook_secret>
    X-UMS-Event: campaign.completed
    X-UMS-Delivery: <the alert's id, the same on every retry: deduplicate on it>

A receiver recomputes the HMAC over the timestamp, a dot and the raw body,
compares in constant time and refuses a timestamp older than a few minutes
(:func:`verify` does exactly that). The body is
``{"id", "event", "at" (ISO 8601, site offset), "host", "summary", "data"}``.

Raising an alert never blocks or breaks the code that raised it: the calls
below return at once (they only queue the alert on the running loop), a
background task sends it, retrying ``[alerts] retries`` times with
exponential backoff (``retry_base`` seconds, doubling), and a destination
that still fails is logged once as a WARNING, naming the URL but never the
secret. Alerts still queued when the suite stops get ``[alerts] timeout``
seconds to go. Services make one call where the event happens:
:func:`notify`, :func:`campaigns_finished`, :func:`relay_unreachable`,
:func:`relay_reachable` and :func:`check_rates`. ``ums alerts test`` sends an
``alert.test`` to every destination at once (:func:`send_test`).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import socket
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Awaitable, Callable

from .clock import site_zone, utcnow
from .errors import UmsError

log = logging.getLogger("ums.alerts")

EVENTS = ("campaign.completed", "campaign.failed", "service.paused", "service.stopped",
          "relay.unreachable", "relay.reachable", "bounce_rate.exceeded", "refusal_rate.exceeded")
#: rate event → (the count it is of, its threshold key, what the count is called)
RATES = {"bounce_rate.exceeded": ("bounced", "bounce_rate_threshold", "permanent bounces"),
         "refusal_rate.exceeded": ("refused", "refusal_rate_threshold", "refusals")}
SIGNATURE_HEADER, TIMESTAMP_HEADER = "X-UMS-Signature", "X-UMS-Timestamp"
#: how old a signed timestamp :func:`verify` accepts by default (Stripe's five minutes)
REPLAY_TOLERANCE_SECONDS = 300
QUEUE_LIMIT = 1000


# --- signing ------------------------------------------------------------------------------

def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-UMS-Signature`` value of ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode("ascii") + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: str, body: bytes, timestamp: str, signature: str, now: float | None = None,
           tolerance: float = REPLAY_TOLERANCE_SECONDS) -> bool:
    """True when ``signature`` is this body's at ``timestamp`` and the timestamp is recent."""
    try:
        sent = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((time.time() if now is None else now) - sent) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, sent, body), signature or "")


# --- what an alert is ---------------------------------------------------------------------

@dataclass
class Alert:
    event: str
    summary: str
    data: dict = field(default_factory=dict)
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    at: datetime = field(default_factory=utcnow)

    def body(self, config) -> bytes:
        """The JSON body: times ISO 8601 with the site's offset."""
        tz = site_zone(config)

        def plain(value):
            return value.astimezone(tz).isoformat() if isinstance(value, datetime) else str(value)

        entry = {"id": self.id, "event": self.event, "at": self.at, "host": socket.gethostname(),
                 "summary": self.summary, "data": self.data}
        return json.dumps(entry, ensure_ascii=False, default=plain).encode("utf-8")


#: builds the alert(s) in the background (reading the database, say); None or []: nothing to tell
Pending = Callable[[], Awaitable["Alert | list[Alert] | None"]]


class RateWatch:
    """Bounce and refusal rates over a sliding window of samples, each the
    counts between two looks; remembers which rates are over, to tell once."""

    def __init__(self, section: dict):
        self.section = section
        self.seen: tuple[int, int] | None = None
        self.samples: deque[tuple[float, dict]] = deque()
        self.next_look = 0.0
        self.over: set[str] = set()

    def due(self) -> bool:
        if not any(self.section[key] for _count, key, _name in RATES.values()):
            return False
        now = time.monotonic()
        if now < self.next_look:
            return False
        self.next_look = now + self.section["rate_check_seconds"]
        return True

    async def look(self, ctx) -> list[Alert]:
        from .store import alert_figures

        async with ctx.db.connect() as conn:
            ids = await alert_figures.last_ids(conn)
            counts = None if self.seen is None else await alert_figures.counts_after(conn, *self.seen, *ids)
        self.seen = ids
        if counts is None:   # the first look only sets where counting starts
            return []
        now = time.monotonic()
        self.samples.append((now, counts))
        while self.samples[0][0] < now - self.section["rate_window_minutes"] * 60:
            self.samples.popleft()
        totals = {name: sum(sample[name] for _at, sample in self.samples) for name in counts}
        return [alert for event in RATES if (alert := self._judge(event, totals, ctx)) is not None]

    def _judge(self, event: str, totals: dict, ctx) -> Alert | None:
        count_name, key, words = RATES[event]
        threshold, sent = self.section[key], totals["sent"]
        rate = totals[count_name] / sent if sent else 0.0
        if not threshold or sent < self.section["rate_min_sent"] or rate <= threshold:
            if rate <= threshold:
                self.over.discard(event)
            return None
        if event in self.over:
            return None
        self.over.add(event)
        minutes = self.section["rate_window_minutes"]
        return Alert(event, f"{words.capitalize()} at {rate:.1%} of {sent} delivered in the last {minutes:g} "
                            f"minutes (threshold {threshold:.1%})",
                     {"rate": round(rate, 4), "threshold": threshold, count_name: totals[count_name], "sent": sent,
                      "window_minutes": minutes}, at=ctx.clock())


# --- sending ------------------------------------------------------------------------------

def _post(url: str, body: bytes, headers: dict, timeout: float) -> None:
    """One POST (in a thread); an HTTP error status raises, so it is retried."""
    import urllib.request

    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        response.read()


def describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def destinations(config) -> list[tuple[str, Callable[[Alert], Awaitable[None]]]]:
    """(name, send) of each place ``[alerts]`` sends to: every webhook URL, and the operators' mail."""
    section = config.section("alerts")
    found = []
    for url in section["webhook_url"]:
        found.append((url, lambda alert, url=url: post_webhook(config, url, alert)))
    if section["email_to"]:
        found.append(("mail to " + ", ".join(section["email_to"]), lambda alert: mail(config, alert)))
    return found


async def post_webhook(config, url: str, alert: Alert) -> None:
    """POST the alert to ``url``, signed; an HTTP error status raises."""
    section = config.section("alerts")
    body = alert.body(config)
    stamp = int(time.time())   # the wall clock, not the application clock: receivers compare it with theirs
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "UMS-alerts",
               "X-UMS-Event": alert.event, "X-UMS-Delivery": alert.id, TIMESTAMP_HEADER: str(stamp),
               SIGNATURE_HEADER: sign(section["webhook_secret"], stamp, body)}
    await asyncio.to_thread(_post, url, body, headers, section["timeout"])


async def mail(config, alert: Alert) -> None:
    """Mail the alert to ``[alerts] email_to`` through the ``[email]`` relay."""
    from email.message import EmailMessage

    import aiosmtplib

    section, relay = config.section("alerts"), config.section("email")
    message = EmailMessage()
    message["From"] = relay["from_address"]
    message["To"] = ", ".join(section["email_to"])
    message["Subject"] = f"[UMS] {alert.summary}"
    details = json.dumps(json.loads(alert.body(config)), indent=2, ensure_ascii=False)
    message.set_content(f"{alert.summary}\n\n{details}\n")
    await aiosmtplib.send(message, hostname=relay["relay_host"], port=relay["relay_port"],
                          start_tls=relay["starttls"], username=relay["username"] or None,
                          password=relay["password"] or None, timeout=section["timeout"])


class Dispatcher:
    """The alerts of one event loop: a queue, a sender task, the relay outage timers."""

    def __init__(self, config, loop: asyncio.AbstractEventLoop):
        self.config = config
        self.section = config.section("alerts")
        self.loop = loop
        self.queue: asyncio.Queue = asyncio.Queue(QUEUE_LIMIT)
        self.sending: set[asyncio.Task] = set()
        self.outages: dict[str, dict] = {}
        self.rates = RateWatch(self.section)
        self.task = loop.create_task(self._run(), name="ums-alerts")
        self.warned_full = False

    def wants(self, event: str) -> bool:
        return event in self.section["events"]

    def submit(self, pending: Pending) -> None:
        try:
            self.queue.put_nowait(pending)
        except asyncio.QueueFull:
            if not self.warned_full:
                log.warning("alert queue full; alerts are dropped until it drains", extra={"limit": QUEUE_LIMIT})
                self.warned_full = True

    async def _run(self) -> None:
        while True:
            pending = await self.queue.get()
            try:
                built = await pending()
            except Exception:
                log.exception("could not build an alert")
                built = None
            finally:
                self.queue.task_done()
            for alert in built if isinstance(built, list) else [built] if built else []:
                if self.wants(alert.event):
                    self._send(alert)

    def _send(self, alert: Alert) -> None:
        for destination in destinations(self.config):
            task = self.loop.create_task(self._deliver(destination, alert))
            self.sending.add(task)
            task.add_done_callback(self.sending.discard)

    async def _deliver(self, destination: tuple, alert: Alert) -> None:
        name, send = destination
        attempts = self.section["retries"] + 1
        for attempt in range(attempts):
            try:
                await send(alert)
                log.info("alert sent", extra={"event": alert.event, "to": name, "alert": alert.id})
                return
            except Exception as exc:
                error = exc
            if attempt + 1 < attempts:
                await asyncio.sleep(self.section["retry_base"] * 2 ** attempt)
        log.warning("alert not delivered", extra={"event": alert.event, "to": name, "attempts": attempts,
                                                  "error": describe(error)})

    async def drain(self, timeout: float) -> None:
        """Let what is queued or being sent go, for at most ``timeout`` seconds; then stop."""
        try:
            await asyncio.wait_for(self._until_idle(), timeout)
        except asyncio.TimeoutError:
            log.warning("alerts still unsent at stop", extra={"queued": self.queue.qsize(), "sending": len(self.sending)})
        for timer in self.outages.values():
            if timer.get("timer"):
                timer["timer"].cancel()
        for task in [self.task, *self.sending]:
            task.cancel()
        await asyncio.gather(self.task, *self.sending, return_exceptions=True)

    async def _until_idle(self) -> None:
        await self.queue.join()
        while self.sending:
            await asyncio.gather(*list(self.sending), return_exceptions=True)


#: by (loop, configuration): a suite's alerts go as its own [alerts] says
_dispatchers: dict[tuple[asyncio.AbstractEventLoop, int], Dispatcher] = {}
_misconfigured_warned = False


def _dispatcher(config) -> Dispatcher | None:
    """This loop's dispatcher, made on first use; None when no alert can go
    anywhere (nothing configured, or no running loop)."""
    global _misconfigured_warned
    section = config.section("alerts")
    if not section.get("webhook_url") and not section.get("email_to"):
        return None
    if section["webhook_url"] and not section["webhook_secret"]:
        if not _misconfigured_warned:
            log.error(str(Unsigned()))
            _misconfigured_warned = True
        return None
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    key = (loop, id(config))
    dispatcher = _dispatchers.get(key)
    if dispatcher is None or dispatcher.task.done():
        dispatcher = _dispatchers[key] = Dispatcher(config, loop)
    return dispatcher


def _ready(alert: Alert) -> Pending:
    async def ready():
        return alert
    return ready


# --- what services call -------------------------------------------------------------------

def notify(config, event: str, summary: str, **data) -> None:
    """Queue one alert (``event`` one of :data:`EVENTS`); returns at once."""
    dispatcher = _dispatcher(config)
    if dispatcher is not None and dispatcher.wants(event):
        dispatcher.submit(_ready(Alert(event, summary, data)))


def campaigns_finished(ctx, campaign_ids) -> None:
    """Campaigns PASS just marked completed: each is told as completed, or as
    failed when nothing of it was delivered (its figures are read in the background)."""
    dispatcher = _dispatcher(ctx.config)
    for campaign_id in campaign_ids or ():
        if dispatcher is not None:
            dispatcher.submit(lambda campaign_id=campaign_id: _campaign_alert(ctx, campaign_id))


async def _campaign_alert(ctx, campaign_id: int) -> Alert | None:
    from .store import campaigns as campaign_store

    async with ctx.db.connect() as conn:
        campaign = await campaign_store.get(conn, campaign_id)
        counts = await campaign_store.counts_by_state(conn, campaign_id)
    if campaign is None:
        return None
    sent, failed = counts.get("sent", 0), counts.get("failed", 0) + counts.get("expired", 0)
    event = "campaign.failed" if failed and not sent else "campaign.completed"
    figures = ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "no recipients"
    word = "failed: nothing delivered" if event == "campaign.failed" else "completed"
    return Alert(event, f"Campaign {campaign['name']} {word} ({figures})",
                 {"campaign": campaign["name"], "campaign_id": campaign_id, "kind": campaign.get("kind"),
                  "counts": counts, "total": sum(counts.values())}, at=ctx.clock())


def relay_unreachable(ctx, channel: str, error: str) -> None:
    """A channel's relay stopped answering: alert if it still does not after
    ``[alerts] relay_unreachable_minutes`` (:func:`relay_reachable` calls it off)."""
    dispatcher = _dispatcher(ctx.config)
    if dispatcher is None or channel in dispatcher.outages:
        return
    outage = dispatcher.outages[channel] = {"since": ctx.clock(), "error": error, "alerted": False}

    def still_down():
        outage["alerted"] = True
        minutes = dispatcher.section["relay_unreachable_minutes"]
        notify(ctx.config, "relay.unreachable",
               f"The {channel} relay has been unreachable for {minutes:g} minutes; deliveries wait and retry",
               channel=channel, error=error, since=outage["since"], minutes=minutes)

    outage["timer"] = dispatcher.loop.call_later(dispatcher.section["relay_unreachable_minutes"] * 60, still_down)


def relay_reachable(ctx, channel: str) -> None:
    """The relay answers again: no alert if it was not yet due; ``relay.reachable`` if one went."""
    dispatcher = _dispatcher(ctx.config)
    outage = dispatcher.outages.pop(channel, None) if dispatcher else None
    if outage is None:
        return
    outage["timer"].cancel()
    if outage["alerted"]:
        down = (ctx.clock() - outage["since"]).total_seconds()
        notify(ctx.config, "relay.reachable", f"The {channel} relay answers again after {down / 60:.0f} minutes",
               channel=channel, since=outage["since"], down_seconds=round(down))


def check_rates(ctx) -> None:
    """PASS calls this on each pass of its scheduler: when a look is due, the
    bounce and refusal rates are counted in the background (see the module's
    docstring)."""
    dispatcher = _dispatcher(ctx.config)
    if dispatcher is not None and dispatcher.rates.due():
        dispatcher.submit(lambda: dispatcher.rates.look(ctx))


class NoDestination(UmsError):
    """No alert destination: set [alerts] webhook_url (with webhook_secret) or email_to in ums.cfg."""


class Unsigned(UmsError):
    """[alerts] webhook_url is set without webhook_secret: no alert is sent unsigned; set webhook_secret."""


async def send_test(config) -> list[tuple[str, str | None]]:
    """Send one ``alert.test`` to every destination now, once each (``ums
    alerts test``): (destination, None or why it failed)."""
    section = config.section("alerts")
    if section["webhook_url"] and not section["webhook_secret"]:
        raise Unsigned()
    found = destinations(config)
    if not found:
        raise NoDestination()
    alert = Alert("alert.test", f"Test alert from UMS on {socket.gethostname()}", {"home": str(config.home)})

    async def attempt(send) -> str | None:
        try:
            await send(alert)
        except Exception as exc:
            return describe(exc)
        return None

    results = await asyncio.gather(*(attempt(send) for _name, send in found))
    return [(name, result) for (name, _send), result in zip(found, results)]


async def drain(config, timeout: float | None = None) -> None:
    """At stop: give the suite's queued alerts up to ``timeout`` (default ``[alerts] timeout``) seconds."""
    dispatcher = _dispatchers.pop((asyncio.get_running_loop(), id(config)), None)
    if dispatcher is not None:
        await dispatcher.drain(dispatcher.section["timeout"] if timeout is None else timeout)
