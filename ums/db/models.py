"""The whole UMS data model, as SQLAlchemy Core tables.

One table per concept; columns are documented where their meaning is not
obvious. Times are UTC. Services never build SQL from these directly: each
concept's queries live in one module of :mod:`ums.store`.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    func,
)

from ..clock import as_utc, to_utc

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)

#: 64-bit ids on PostgreSQL, SQLite's rowid alias on SQLite.
Id = BigInteger().with_variant(Integer(), "sqlite")


class UtcTime(TypeDecorator):
    """A point in time: stored as UTC, read back aware (UTC) on both databases.

    PostgreSQL's ``timestamptz`` keeps the instant itself; SQLite keeps text
    with no offset, so an aware value is converted to UTC on the way in (it
    would otherwise be stored as its own wall-clock time and read back as
    UTC) and marked UTC on the way out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        value = to_utc(value)
        if value is not None and dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        return as_utc(value)


Time = UtcTime()


def _id() -> Column:
    return Column("id", Id, primary_key=True, autoincrement=True)


def _created() -> Column:
    return Column("created_at", Time, nullable=False, server_default=func.now())


# --- people and access ------------------------------------------------------

users = Table(
    "users", metadata, _id(),
    Column("username", String(64), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    # admin, operator, marketer or user (a mailbox user)
    Column("role", String(16), nullable=False, server_default="user"),
    Column("display_name", String(128)),
    Column("email", String(320)),
    Column("disabled", Boolean, nullable=False, server_default="0"),
    _created(),
)

api_keys = Table(
    "api_keys", metadata, _id(),
    # the back-office system that owns the key, e.g. "account" or "information"
    Column("system", String(64), nullable=False, index=True),
    # first characters of the key, shown in listings; the key itself is never stored
    Column("prefix", String(16), nullable=False),
    Column("key_hash", String(128), nullable=False, unique=True),
    # what the key may do: a list of ums.store.apikeys.SCOPES (NULL: the back-office defaults)
    Column("scopes", JSON),
    # the web user a key with the mailbox scope reads the mailboxes of (NULL: none)
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE")),
    _created(),
    Column("revoked_at", Time),
    Column("last_used_at", Time),
)

# --- contacts, consent, suppression -----------------------------------------

contacts = Table(
    "contacts", metadata, _id(),
    # the bank's own customer number; events name customers by it
    Column("customer_id", String(64), unique=True),
    Column("name", String(200)),
    Column("email", String(320), index=True),
    Column("fax", String(32)),
    Column("phone", String(32)),
    # customer grade (VIP, GOLD, NORMAL…) used by channel policies and segments
    Column("grade", String(32), index=True),
    Column("timezone", String(64)),
    Column("locale", String(16)),
    Column("attributes", JSON),
    _created(),
    Column("updated_at", Time, server_default=func.now()),
)

address_books = Table(
    "address_books", metadata, _id(),
    Column("name", String(128), nullable=False),
    # personal, shared or organisation
    Column("scope", String(16), nullable=False, server_default="shared"),
    # personal: its owner; shared: who made it (and manages its sharing); NULL: made by the back office
    Column("owner_id", Id, ForeignKey("users.id", ondelete="CASCADE")),
    _created(),
    UniqueConstraint("name", "owner_id"),
)

#: who a shared or organisation book is shared with: one row per role (``api``
#: for API keys) or per named user (ums.store.addressbooks holds the rules)
address_book_shares = Table(
    "address_book_shares", metadata, _id(),
    Column("book_id", Id, ForeignKey("address_books.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("role", String(16)),
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE")),
)

address_book_entries = Table(
    "address_book_entries", metadata,
    Column("book_id", Id, ForeignKey("address_books.id", ondelete="CASCADE"), primary_key=True),
    # indexed alone too: "is this contact in any book" (ums.store.addressbooks.visible_contacts)
    Column("contact_id", Id, ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True, index=True),
)

consents = Table(
    "consents", metadata, _id(),
    Column("contact_id", Id, ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False),
    # email, fax, voice, or "any"
    Column("channel", String(8), nullable=False, server_default="any"),
    Column("purpose", String(16), nullable=False, server_default="advertising"),
    Column("granted", Boolean, nullable=False),
    # consent to advertising between 21:00 and 08:00 local time
    Column("night_time", Boolean, nullable=False, server_default="0"),
    # where the consent was given (web form, branch, call centre…)
    Column("source", String(128), nullable=False),
    Column("recorded_at", Time, nullable=False),
    Column("withdrawn_at", Time),
    Index("ix_consents_contact_purpose", "contact_id", "purpose"),
)

#: what a customer chose on the preference centre (the page behind every
#: unsubscribe link; ums.preferences owns the rules): one row per contact, none
#: until they first save. Each change is also a consents row (source preference-centre).
contact_preferences = Table(
    "contact_preferences", metadata,
    Column("contact_id", Id, ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True),
    # channels (email, fax, voice) and site topics ([preferences] topics) the customer turned off
    Column("channels_off", JSON, nullable=False),
    Column("topics_off", JSON, nullable=False),
    # the channel to try first (NULL: the sender's own order)
    Column("preferred_channel", String(8)),
    Column("source", String(128), nullable=False),
    Column("updated_at", Time, nullable=False),
)

suppressions = Table(
    "suppressions", metadata, _id(),
    Column("channel", String(8), nullable=False),
    # normalised address: lower-case email, digits-only number
    Column("address", String(320), nullable=False),
    # unsubscribe, refusal, bounce, complaint or manual
    Column("reason", String(32), nullable=False),
    # what the entry stops: all sends, or advertising only (a refusal of advertising)
    Column("scope", String(16), nullable=False, server_default="all"),
    Column("source", String(128)),
    Column("detail", Text),
    # why the entry can be trusted: "reply to <message-id>", "token", "dkim=pass d=… aligned",
    # "confirmed by link"… (NULL for entries older than evidence)
    Column("evidence", Text),
    _created(),
    UniqueConstraint("channel", "address"),
)

# --- content ------------------------------------------------------------------

templates = Table(
    "templates", metadata, _id(),
    Column("name", String(128), nullable=False),
    Column("channel", String(8), nullable=False),
    # advertising or transactional
    Column("kind", String(16), nullable=False, server_default="transactional"),
    Column("subject", Text),
    Column("body_html", Text),
    Column("body_text", Text),
    Column("sender_name", String(128)),
    Column("sender_contact", String(128)),
    Column("options", JSON),
    Column("version", Integer, nullable=False, server_default="1"),
    _created(),
    Column("updated_at", Time, server_default=func.now()),
    UniqueConstraint("name", "channel"),
)

# --- campaigns and EPS ----------------------------------------------------------

campaigns = Table(
    "campaigns", metadata, _id(),
    Column("name", String(128), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),
    Column("channel", String(8), nullable=False, server_default="email"),
    Column("template_name", String(128), nullable=False),
    # address books, segment filter or CSV, as given in the campaign file
    Column("audience", JSON, nullable=False),
    # draft, scheduled, running, paused, completed, cancelled
    Column("state", String(16), nullable=False, server_default="draft"),
    Column("schedule_at", Time),
    Column("cron", String(64)),
    Column("throttle", JSON),
    Column("expires_after", Integer),
    Column("total", Integer, nullable=False, server_default="0"),
    # the highest contact id already expanded into deliveries
    Column("checkpoint", Id, nullable=False, server_default="0"),
    Column("definition", JSON),
    Column("created_by", String(64)),
    _created(),
    Column("started_at", Time),
    Column("finished_at", Time),
    # set when every audience member has a delivery row
    Column("expanded_at", Time),
    # engagement tracking (open pixel, signed click redirects): opt-in, off by default
    Column("tracking", Boolean, nullable=False, server_default="0"),
)

eps_services = Table(
    "eps_services", metadata, _id(),
    Column("name", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("event_type", String(64), nullable=False, index=True),
    # active, stopped or removed
    Column("state", String(16), nullable=False, server_default="active"),
    Column("kind", String(16), nullable=False, server_default="transactional"),
    Column("priority", Integer, nullable=False, server_default="5"),
    Column("definition", JSON, nullable=False),
    _created(),
    Column("created_by", String(64)),
    # the back-office system that registered it over HTTP (its keys manage it); NULL: an operator's
    Column("system", String(64)),
    UniqueConstraint("name", "version"),
)

#: an API answer kept for its Idempotency-Key: the same key and body get it
#: again, the same key with another body is a conflict
idempotent_requests = Table(
    "idempotent_requests", metadata, _id(),
    # who sent it: "system:<name>" for a key, "user:<id>" for a web session
    Column("owner", String(128), nullable=False),
    Column("idempotency_key", String(128), nullable=False),
    # SHA-256 of the method, path and body
    Column("request_hash", String(64), nullable=False),
    Column("status", Integer, nullable=False),
    Column("response", JSON, nullable=False),
    _created(),
    UniqueConstraint("owner", "idempotency_key", name="uq_idempotent_requests_owner_key"),
)

events = Table(
    "events", metadata, _id(),
    Column("source_system", String(64), nullable=False),
    Column("idempotency_key", String(128), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("customer_id", String(64), index=True),
    Column("payload", JSON, nullable=False),
    # received, dispatched, held (service stopped), unmatched or failed
    Column("state", String(16), nullable=False, server_default="received"),
    Column("service_name", String(128)),
    Column("service_version", Integer),
    Column("error", Text),
    Column("received_at", Time, nullable=False, server_default=func.now()),
    Column("processed_at", Time),
    UniqueConstraint("source_system", "idempotency_key"),
    Index("ix_events_state", "state"),
)

# --- the delivery queue (PASS) ---------------------------------------------------

deliveries = Table(
    "deliveries", metadata, _id(),
    Column("channel", String(8), nullable=False),
    # email address, fax or phone number
    Column("recipient", String(320), nullable=False),
    Column("contact_id", Id, ForeignKey("contacts.id", ondelete="SET NULL")),
    Column("campaign_id", Id, ForeignKey("campaigns.id", ondelete="CASCADE")),
    Column("event_id", Id, ForeignKey("events.id", ondelete="SET NULL")),
    Column("service_name", String(128)),
    Column("template_name", String(128)),
    Column("kind", String(16), nullable=False, server_default="transactional"),
    Column("priority", Integer, nullable=False, server_default="5"),
    # urgent, notice or marketing (ums.queue.lanes): higher lanes are claimed first
    Column("lane", String(16), nullable=False, server_default="notice"),
    # queued, sending, retry, waiting (quiet hours) — or final: sent, failed,
    # suppressed, expired, cancelled
    Column("state", String(16), nullable=False, server_default="queued"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    # when it may go next; for a held delivery, when the hold ends
    Column("due_at", Time, nullable=False, server_default=func.now()),
    # why a pending delivery waits (a ums.holds.Hold value; last_error has the detail)
    Column("hold", String(16)),
    Column("expires_at", Time),
    Column("locked_by", String(128)),
    Column("lease_until", Time),
    # kept across retries and crashes so receivers can deduplicate
    Column("message_id", String(255), unique=True),
    # per-delivery secret for List-Unsubscribe and the return path
    Column("token", String(64), unique=True),
    Column("variables", JSON),
    # channels still to try if this one has no address or fails permanently
    Column("fallback", JSON),
    Column("last_code", String(16)),
    Column("last_error", Text),
    Column("bounced_at", Time),
    _created(),
    Column("updated_at", Time, server_default=func.now()),
    Column("finished_at", Time),
    Index("ix_deliveries_claim", "state", "lane", "due_at"),
    Index("ix_deliveries_campaign", "campaign_id", "state"),
    # what a customer was sent lately (the frequency caps, ums.caps)
    Index("ix_deliveries_contact_kind", "contact_id", "kind", "finished_at"),
    UniqueConstraint("campaign_id", "contact_id", "channel", name="uq_deliveries_campaign_contact"),
)

#: events of a digest service (``"digest": {"window", "template"}``) waiting for
#: their window to close: then all of one customer's events in one window become
#: one delivery (one event: the service's normal message), and the rows are
#: marked released in the transaction that queues it (eps.digests)
digest_events = Table(
    "digest_events", metadata, _id(),
    Column("service_name", String(128), nullable=False),
    Column("contact_id", Id, ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False),
    Column("event_id", Id, ForeignKey("events.id", ondelete="SET NULL")),
    # the delivery the event alone would have made (ums.outbox.SendRequest fields)
    Column("request", JSON, nullable=False),
    Column("received_at", Time, nullable=False),
    # when the window this event belongs to closes (its first event + the window)
    Column("window_ends_at", Time, nullable=False),
    Column("released_at", Time),
    Column("delivery_id", Id, ForeignKey("deliveries.id", ondelete="SET NULL")),
    Index("ix_digest_events_due", "released_at", "window_ends_at"),
    Index("ix_digest_events_open", "service_name", "contact_id", "released_at"),
)

#: the first open (link "") and the first click on each link of a delivery:
#: one row each, so a recipient counts once however often they look
tracking_events = Table(
    "tracking_events", metadata, _id(),
    # NULL for a delivery of no campaign (a journey's email: ums.journeys reads its opens by delivery)
    Column("campaign_id", Id, ForeignKey("campaigns.id", ondelete="CASCADE")),
    Column("delivery_id", Id, ForeignKey("deliveries.id", ondelete="CASCADE"), nullable=False),
    Column("contact_id", Id, ForeignKey("contacts.id", ondelete="SET NULL"), index=True),
    # open or click
    Column("kind", String(8), nullable=False),
    # a digest of the clicked URL ("" for an open)
    Column("link", String(32), nullable=False),
    Column("url", Text),
    Column("at", Time, nullable=False),
    UniqueConstraint("delivery_id", "kind", "link", name="uq_tracking_events_once"),
    Index("ix_tracking_events_campaign", "campaign_id", "kind"),
)

#: keys every process reads from the shared database (the tracking links' HMAC key)
site_secrets = Table(
    "site_secrets", metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(128), nullable=False),
    Column("created_at", Time, nullable=False),
)

cdr = Table(
    "cdr", metadata, _id(),
    Column("delivery_id", Id, ForeignKey("deliveries.id", ondelete="SET NULL"), index=True),
    Column("attempt", Integer, nullable=False),
    # the delivery's one final record; earlier attempts are retries
    Column("final", Boolean, nullable=False),
    # Asterisk Master.csv columns, in order
    Column("accountcode", String(64)),
    Column("src", String(320)),
    Column("dst", String(320)),
    Column("dcontext", String(64)),
    Column("clid", String(320)),
    Column("channel", String(128)),
    Column("dstchannel", String(128)),
    Column("lastapp", String(64)),
    Column("lastdata", String(255)),
    Column("start", Time, nullable=False, index=True),
    Column("answer", Time),
    Column("end", Time),
    Column("duration", Integer, nullable=False, server_default="0"),
    Column("billsec", Integer, nullable=False, server_default="0"),
    # ANSWERED, NO ANSWER, BUSY or FAILED
    Column("disposition", String(16), nullable=False),
    Column("amaflags", String(16), server_default="BILLING"),
    Column("uniqueid", String(64)),
    Column("userfield", String(255)),
    # UMS columns
    Column("source", String(160)),
    Column("medium", String(8), nullable=False),
    Column("pages", Integer),
    Column("bytes", Integer),
    Column("status_code", String(16)),
    Column("cost", Numeric(12, 4)),
)

# --- journeys (multi-step flows; ums.journeys) ------------------------------------------

journeys = Table(
    "journeys", metadata, _id(),
    Column("name", String(64), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),
    # an EPS event type whose events enter their customer (NULL: entered by the CLI or a campaign audience)
    Column("event_type", String(64), index=True),
    # active, paused (runs wait where they are) or stopped (runs end)
    Column("state", String(16), nullable=False, server_default="active"),
    # the flow in its JSON form (ums.journeys.definitions)
    Column("definition", JSON, nullable=False),
    Column("created_by", String(64)),
    _created(),
    Column("updated_at", Time),
)

#: one customer's place in one journey: advanced only by a compare-and-set on
#: ``version`` in the transaction that does the step (and makes its delivery)
journey_runs = Table(
    "journey_runs", metadata, _id(),
    Column("journey_id", Id, ForeignKey("journeys.id", ondelete="CASCADE"), nullable=False),
    Column("contact_id", Id, ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False, index=True),
    # the id of the step to do next (at next_at); NULL once the run has ended
    Column("step", String(64)),
    # active, or ended: completed, exited, goal, refused, stopped
    Column("state", String(16), nullable=False, server_default="active"),
    Column("version", Integer, nullable=False, server_default="0"),
    Column("next_at", Time, nullable=False),
    # how the customer entered: cli, event:<id>, campaign:<name>
    Column("source", String(128)),
    Column("entered_at", Time, nullable=False),
    Column("updated_at", Time, nullable=False),
    Column("finished_at", Time),
    UniqueConstraint("journey_id", "contact_id", name="uq_journey_runs_journey_contact"),
    Index("ix_journey_runs_due", "state", "next_at"),
)

#: what each run did, step by step: a send's delivery, a wait's end, a branch's choice
journey_steps = Table(
    "journey_steps", metadata, _id(),
    Column("run_id", Id, ForeignKey("journey_runs.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("step", String(64), nullable=False),
    # entered, send, wait, branch, exit, goal, completed, refused, stopped
    Column("kind", String(16), nullable=False),
    Column("delivery_id", Id, ForeignKey("deliveries.id", ondelete="SET NULL")),
    # send: the channel used; branch: the case taken; wait: until when; exit: why
    Column("outcome", String(64)),
    Column("at", Time, nullable=False),
)

# --- inbound (MAS) -------------------------------------------------------------------

mailboxes = Table(
    "mailboxes", metadata, _id(),
    Column("address", String(320), nullable=False, unique=True),
    # the web user who reads it (one owner; a user may own several mailboxes)
    Column("owner_id", Id, ForeignKey("users.id", ondelete="SET NULL"), index=True),
    # tell the owner of new mail through PASS on this channel (none to stay quiet)
    Column("notify_channel", String(8), nullable=False, server_default="none"),
    Column("notify_address", String(320)),
    _created(),
)

message_bodies = Table(
    "message_bodies", metadata, _id(),
    # SHA-256 of raw (hex): one row per distinct message, however many mailboxes file it
    Column("sha256", String(64), nullable=False, unique=True),
    Column("size", Integer, nullable=False),
    # the message exactly as received
    Column("raw", LargeBinary, nullable=False),
    # its decoded body text, case-folded, for search (ums.mailindex.searchable_text), and the
    # text of its documents once read (fax pages recognised, PDF pages: message_pages)
    Column("search_text", Text),
    # pending: it carries a document (fax TIFF, PDF) whose text is to be read (ums.ocr);
    # set once, when stored: how the reading went is in document_reads
    Column("text_state", String(16), index=True),
)

#: a stored message's documents, read (or found unreadable) — apart from message_bodies so
#: that marking it never rewrites the row that holds the message's bytes
document_reads = Table(
    "document_reads", metadata,
    Column("body_id", Id, ForeignKey("message_bodies.id", ondelete="CASCADE"), primary_key=True),
    # read or failed
    Column("state", String(16), nullable=False),
    Column("read_at", Time, nullable=False),
)

#: Objects the search index adds outside this model (ums.db.migrations 0010): on SQLite
#: the FTS5 table over message_bodies.search_text and its shadow tables, on PostgreSQL
#: the pg_trgm GIN index. Schema comparisons leave them out (:func:`in_model`).
SEARCH_INDEX_TABLE = "message_search"
SEARCH_INDEX_NAMES = frozenset({SEARCH_INDEX_TABLE, *(f"{SEARCH_INDEX_TABLE}_{part}" for part in (
    "data", "idx", "content", "docsize", "config")), "ix_message_bodies_search_trgm"})


def in_model(_object, name, type_, _reflected, _compare_to) -> bool:
    """Alembic's ``include_object``: everything but the search index's own objects."""
    return name not in SEARCH_INDEX_NAMES

#: the text of each page of a message's document — a fax's pages recognised (ums.ocr), a
#: PDF's pages read — for a stored message (body_id) or an outbound fax (delivery_id)
message_pages = Table(
    "message_pages", metadata, _id(),
    Column("body_id", Id, ForeignKey("message_bodies.id", ondelete="CASCADE"), index=True),
    Column("delivery_id", Id, ForeignKey("deliveries.id", ondelete="CASCADE"), index=True),
    # 1, 2, 3… in the document's order
    Column("page", Integer, nullable=False),
    Column("text", Text, nullable=False),
)

mailbox_messages = Table(
    "mailbox_messages", metadata, _id(),
    Column("mailbox_id", Id, ForeignKey("mailboxes.id", ondelete="CASCADE")),
    Column("folder", String(128), nullable=False, server_default="INBOX"),
    Column("flags", JSON),
    # email, fax or voice
    Column("media", String(8), nullable=False, server_default="email"),
    # reply, refusal, bounce, fax, voice, notice…
    Column("classification", String(32)),
    Column("sender", String(320)),
    Column("recipient", String(320)),
    Column("subject", Text),
    Column("message_id", String(255), index=True),
    # the conversation: its first message's Message-ID (ums.mailindex.thread_key)
    Column("thread_key", String(255), index=True),
    Column("size", Integer, nullable=False),
    # the stored message (shared by every mailbox entry of the same message)
    Column("body_id", Id, ForeignKey("message_bodies.id"), nullable=False, index=True),
    Column("contact_id", Id, ForeignKey("contacts.id", ondelete="SET NULL"), index=True),
    Column("delivery_id", Id, ForeignKey("deliveries.id", ondelete="SET NULL"), index=True),
    Column("pages", Integer),
    Column("duration", Float),
    Column("received_at", Time, nullable=False, server_default=func.now()),
    # MIME problems found while parsing (broken boundary, bad base64…), one per line; NULL when clean
    Column("defects", Text),
    Index("ix_mailbox_messages_box_folder", "mailbox_id", "folder"),
    Index("ix_mailbox_messages_box_received", "mailbox_id", "received_at"),
)

rules = Table(
    "rules", metadata, _id(),
    # site (runs first for every mailbox) or mailbox
    Column("scope", String(16), nullable=False),
    Column("mailbox_id", Id, ForeignKey("mailboxes.id", ondelete="CASCADE")),
    Column("name", String(128), nullable=False),
    # a Sieve script (RFC 5228)
    Column("script", Text, nullable=False),
    Column("active", Boolean, nullable=False, server_default="1"),
    Column("updated_at", Time, server_default=func.now()),
    UniqueConstraint("scope", "mailbox_id", "name"),
)

bounce_scores = Table(
    "bounce_scores", metadata, _id(),
    Column("channel", String(8), nullable=False),
    # normalised address, as in suppressions
    Column("address", String(320), nullable=False),
    # temporary bounces counted so far; at mas.bounce_threshold the address is suppressed
    Column("score", Integer, nullable=False, server_default="0"),
    Column("last_bounce_at", Time),
    UniqueConstraint("channel", "address"),
)

# --- service control -----------------------------------------------------------------

service_state = Table(
    "service_state", metadata,
    Column("service", String(32), primary_key=True),
    # running or paused: what the operator asked for; survives restarts
    Column("desired", String(16), nullable=False),
    Column("changed_at", Time, nullable=False),
    Column("changed_by", String(64)),
)

service_instances = Table(
    "service_instances", metadata, _id(),
    Column("service", String(32), nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("address", String(255)),
    # running, paused or stopping: what the process reports
    Column("state", String(16), nullable=False),
    Column("started_at", Time, nullable=False),
    Column("heartbeat_at", Time, nullable=False),
    Column("stop_requested", Boolean, nullable=False, server_default="0"),
    # service-specific figures (queue depth, connections…)
    Column("info", JSON),
    Index("ix_service_instances_service", "service"),
)

# --- web front end (WAS) -----------------------------------------------------------

web_sessions = Table(
    "web_sessions", metadata, _id(),
    # SHA-256 of the cookie value; the cookie itself is never stored
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    # per-session secret every form must echo back
    Column("csrf", String(64), nullable=False),
    _created(),
    Column("expires_at", Time, nullable=False),
)

web_login_failures = Table(
    "web_login_failures", metadata, _id(),
    Column("username", String(64), nullable=False),
    Column("client", String(64), nullable=False),
    Column("failed_at", Time, nullable=False),
    Index("ix_web_login_failures_username", "username", "failed_at"),
)
