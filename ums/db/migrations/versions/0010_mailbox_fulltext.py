"""The mailbox's full-text index: message_bodies.search_text indexed by
trigrams — on SQLite an FTS5 table (``trigram`` tokenizer; new messages
are added by one INSERT … SELECT per stored batch, ums.store.mailbox.store_bodies,
five times cheaper than a per-row trigger; changes and deletions follow by
trigger), on
PostgreSQL a pg_trgm GIN index — so a Korean word is found inside words
(``환불`` in ``환불을``) without a word splitter — over each message's search
text, which now holds its sender and subject too; message_pages: the text of each
page of a message's document (a fax recognised, a PDF read, by ums.ocr);
message_bodies.text_state: ``pending`` when it has such a document, and
document_reads: that it was read (or could not be), apart, so that marking it
never rewrites the row holding the message's bytes.

Messages stored before are indexed here: their search text is extracted
again (with sender and subject), the index is built from it, and each one
carrying a document (fax TIFF, PDF) is marked pending, so MAS reads its pages
when it next starts.

Revision ID: 0010
Revises: 0009
"""
from alembic import op
import sqlalchemy as sa

from ums import mailindex


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
#: messages examined per round trip (each holds a whole message)
CHUNK = 200

bodies = sa.table('message_bodies', sa.column('id', sa.Integer), sa.column('raw', sa.LargeBinary),
                  sa.column('search_text', sa.Text), sa.column('text_state', sa.String))

SQLITE_INDEX = [
    # its own copy of the text (not external content): a search of a word shorter than a
    # trigram scans this narrow table, not message_bodies with every message's bytes
    "CREATE VIRTUAL TABLE message_search USING fts5(search_text, tokenize='trigram')",
    "INSERT INTO message_search(rowid, search_text) SELECT id, search_text FROM message_bodies",
    "CREATE TRIGGER message_search_delete AFTER DELETE ON message_bodies BEGIN "
    "DELETE FROM message_search WHERE rowid = old.id; END",
    "CREATE TRIGGER message_search_update AFTER UPDATE OF search_text ON message_bodies BEGIN "
    "DELETE FROM message_search WHERE rowid = old.id; "
    "INSERT INTO message_search(rowid, search_text) VALUES (new.id, new.search_text); END",
]
POSTGRESQL_INDEX = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX ix_message_bodies_search_trgm ON message_bodies USING gin (search_text gin_trgm_ops)",
]


def upgrade() -> None:
    op.add_column('message_bodies', sa.Column('text_state', sa.String(length=16), nullable=True))
    op.create_index(op.f('ix_message_bodies_text_state'), 'message_bodies', ['text_state'], unique=False)
    op.create_table(
        'message_pages',
        sa.Column('id', ID, autoincrement=True, nullable=False),
        sa.Column('body_id', ID, nullable=True),
        sa.Column('delivery_id', ID, nullable=True),
        sa.Column('page', sa.Integer(), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['body_id'], ['message_bodies.id'], name=op.f('fk_message_pages_body_id_message_bodies'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['delivery_id'], ['deliveries.id'], name=op.f('fk_message_pages_delivery_id_deliveries'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_message_pages')),
    )
    op.create_index(op.f('ix_message_pages_body_id'), 'message_pages', ['body_id'], unique=False)
    op.create_table(
        'document_reads',
        sa.Column('body_id', ID, nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('read_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['body_id'], ['message_bodies.id'],
                                name=op.f('fk_document_reads_body_id_message_bodies'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('body_id', name=op.f('pk_document_reads')),
    )
    op.create_index(op.f('ix_message_pages_delivery_id'), 'message_pages', ['delivery_id'], unique=False)
    conn = op.get_bind()
    _index_stored_messages(conn)
    for statement in SQLITE_INDEX if conn.dialect.name == 'sqlite' else POSTGRESQL_INDEX:
        op.execute(statement)


def _index_stored_messages(conn) -> None:
    """Each stored message's search text as new arrivals get it (now with sender and
    subject), and those carrying a document marked to be read (ums.ocr, in MAS)."""
    last = 0
    while True:
        rows = conn.execute(sa.select(bodies.c.id, bodies.c.raw).where(bodies.c.id > last)
                            .order_by(bodies.c.id).limit(CHUNK)).all()
        if not rows:
            return
        for body_id, raw in rows:
            text, documents = mailindex.extract(bytes(raw))
            conn.execute(bodies.update().where(bodies.c.id == body_id).values(
                search_text=text, text_state='pending' if documents else None))
        last = rows[-1][0]


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        for trigger in ('delete', 'update'):
            op.execute(f"DROP TRIGGER IF EXISTS message_search_{trigger}")
        op.execute("DROP TABLE IF EXISTS message_search")
    else:
        op.execute("DROP INDEX IF EXISTS ix_message_bodies_search_trgm")
    op.drop_table('document_reads')
    op.drop_index(op.f('ix_message_pages_delivery_id'), table_name='message_pages')
    op.drop_index(op.f('ix_message_pages_body_id'), table_name='message_pages')
    op.drop_table('message_pages')
    op.drop_index(op.f('ix_message_bodies_text_state'), table_name='message_bodies')
    op.drop_column('message_bodies', 'text_state')
