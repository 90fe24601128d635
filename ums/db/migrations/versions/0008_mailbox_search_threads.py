"""message_bodies.search_text: each stored message's decoded text, for the
inbox search; mailbox_messages.thread_key: its conversation; an index per
mailbox by arrival (the inbox pages through it); mailbox_messages.delivery_id
and mailboxes.owner_id indexed;
api_keys.user_id: the web user whose mailboxes a ``mailbox`` key reads

Messages stored before are indexed here (text and thread, with
:mod:`ums.mailindex`, the code that indexes new arrivals), so search and
threads cover the whole mailbox at once. Existing keys belong to no user: a
``mailbox`` key reads no mailbox until it is made again with ``--user``.

Revision ID: 0008
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa

from ums import mailindex


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

#: messages indexed per round trip (each holds a whole message)
CHUNK = 200
Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')

bodies = sa.table('message_bodies', sa.column('id', sa.Integer), sa.column('raw', sa.LargeBinary),
                  sa.column('search_text', sa.Text))
entries = sa.table('mailbox_messages', sa.column('id', sa.Integer), sa.column('body_id', sa.Integer),
                   sa.column('message_id', sa.String), sa.column('thread_key', sa.String),
                   sa.column('received_at', sa.DateTime))


def upgrade() -> None:
    with op.batch_alter_table('message_bodies', schema=None) as batch_op:
        batch_op.add_column(sa.Column('search_text', sa.Text(), nullable=True))
    with op.batch_alter_table('mailbox_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('thread_key', sa.String(length=255), nullable=True))
        batch_op.create_index(batch_op.f('ix_mailbox_messages_thread_key'), ['thread_key'], unique=False)
        batch_op.create_index('ix_mailbox_messages_box_received', ['mailbox_id', 'received_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_mailbox_messages_delivery_id'), ['delivery_id'], unique=False)
    with op.batch_alter_table('mailboxes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mailboxes_owner_id'), ['owner_id'], unique=False)
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('user_id', Id, nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_api_keys_user_id_users'), 'users', ['user_id'], ['id'],
                                    ondelete='CASCADE')
    _index_stored_messages(op.get_bind())


def _index_stored_messages(conn) -> None:
    """Search text of every stored body, then each entry's thread (oldest first,
    so an answer finds the thread of the message it answers)."""
    threads: dict[str, str] = {}
    last = 0
    while True:
        rows = conn.execute(
            sa.select(entries.c.id, bodies.c.id, bodies.c.raw, bodies.c.search_text)
            .select_from(entries.join(bodies, bodies.c.id == entries.c.body_id))
            .where(entries.c.id > last).order_by(entries.c.id).limit(CHUNK)).all()
        if not rows:
            return
        for entry_id, body_id, raw, text in rows:
            raw = bytes(raw)
            if text is None:
                conn.execute(bodies.update().where(bodies.c.id == body_id)
                             .values(search_text=mailindex.searchable_text(raw)))
            found = mailindex.thread_headers(raw)
            key = mailindex.thread_key(found, threads)
            if found.message_id and key:
                threads.setdefault(found.message_id, key)
            conn.execute(entries.update().where(entries.c.id == entry_id).values(thread_key=key))
        last = rows[-1][0]


def downgrade() -> None:
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_api_keys_user_id_users'), type_='foreignkey')
        batch_op.drop_column('user_id')
    # the mailbox tables by plain ALTER TABLE … DROP COLUMN (SQLite 3.35+), not
    # a batch copy: a copy would lose the names of their other constraints,
    # which the downgrade of 0007 drops by name
    op.drop_index(op.f('ix_mailboxes_owner_id'), table_name='mailboxes')
    op.drop_index('ix_mailbox_messages_box_received', table_name='mailbox_messages')
    op.drop_index(op.f('ix_mailbox_messages_delivery_id'), table_name='mailbox_messages')
    op.drop_index(op.f('ix_mailbox_messages_thread_key'), table_name='mailbox_messages')
    op.drop_column('mailbox_messages', 'thread_key')
    op.drop_column('message_bodies', 'search_text')
