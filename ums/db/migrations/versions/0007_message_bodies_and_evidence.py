"""message_bodies: one stored copy of each message, referenced by every
mailbox entry filing it (mailbox_messages.body_id replaces mailbox_messages.raw);
suppressions.evidence: why an entry can be trusted

Existing entries are migrated: each distinct raw message becomes one body
(by its SHA-256) and every entry that held it points at it, so messages
stored before keep reading back exactly as received. Existing suppressions
have no evidence (NULL). The downgrade copies each body back into its entries.

Revision ID: 0007
Revises: 0006
"""
import hashlib

from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

#: entries migrated per round trip (each holds a whole message)
CHUNK = 200

entries = sa.table('mailbox_messages', sa.column('id', sa.Integer), sa.column('raw', sa.LargeBinary),
                   sa.column('body_id', sa.Integer))
bodies = sa.table('message_bodies', sa.column('id', sa.Integer), sa.column('sha256', sa.String),
                  sa.column('size', sa.Integer), sa.column('raw', sa.LargeBinary))


def upgrade() -> None:
    op.create_table(
        'message_bodies',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('size', sa.Integer(), nullable=False),
        sa.Column('raw', sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_message_bodies')),
        sa.UniqueConstraint('sha256', name=op.f('uq_message_bodies_sha256')),
    )
    with op.batch_alter_table('mailbox_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('body_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                                      nullable=True))
    _move_raw_to_bodies(op.get_bind())
    with op.batch_alter_table('mailbox_messages', schema=None) as batch_op:
        batch_op.alter_column('body_id', existing_type=sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                              nullable=False)
        batch_op.create_foreign_key(batch_op.f('fk_mailbox_messages_body_id_message_bodies'),
                                    'message_bodies', ['body_id'], ['id'])
        batch_op.create_index(batch_op.f('ix_mailbox_messages_body_id'), ['body_id'], unique=False)
        batch_op.drop_column('raw')
    with op.batch_alter_table('suppressions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('evidence', sa.Text(), nullable=True))


def _move_raw_to_bodies(conn) -> None:
    known: dict[str, int] = {}
    last = 0
    while True:
        rows = conn.execute(sa.select(entries.c.id, entries.c.raw).where(entries.c.id > last)
                            .order_by(entries.c.id).limit(CHUNK)).all()
        if not rows:
            return
        for entry_id, raw in rows:
            raw = bytes(raw)
            digest = hashlib.sha256(raw).hexdigest()
            if digest not in known:
                known[digest] = conn.execute(
                    bodies.insert().values(sha256=digest, size=len(raw), raw=raw).returning(bodies.c.id)
                ).scalar_one()
            conn.execute(entries.update().where(entries.c.id == entry_id).values(body_id=known[digest]))
        last = rows[-1][0]


def downgrade() -> None:
    with op.batch_alter_table('suppressions', schema=None) as batch_op:
        batch_op.drop_column('evidence')
    with op.batch_alter_table('mailbox_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('raw', sa.LargeBinary(), nullable=True))
    conn = op.get_bind()
    conn.execute(entries.update().values(
        raw=sa.select(bodies.c.raw).where(bodies.c.id == entries.c.body_id).scalar_subquery()))
    with op.batch_alter_table('mailbox_messages', schema=None) as batch_op:
        batch_op.alter_column('raw', existing_type=sa.LargeBinary(), nullable=False)
        batch_op.drop_index(batch_op.f('ix_mailbox_messages_body_id'))
        batch_op.drop_constraint(batch_op.f('fk_mailbox_messages_body_id_message_bodies'), type_='foreignkey')
        batch_op.drop_column('body_id')
    op.drop_table('message_bodies')
