"""Frequency caps and digests: an index for what a customer was sent lately
(deliveries by contact, kind and finish time — the caps count from it in one
query per PASS batch) and ``digest_events``, the events of digest services
waiting for their window to close.

Revision ID: 0013_caps_digest
Revises: 0012
"""
from alembic import op
import sqlalchemy as sa


revision = '0013_caps_digest'
down_revision = '0012'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_index('ix_deliveries_contact_kind', 'deliveries', ['contact_id', 'kind', 'finished_at'])
    op.create_table(
        'digest_events',
        sa.Column('id', ID, autoincrement=True, nullable=False),
        sa.Column('service_name', sa.String(length=128), nullable=False),
        sa.Column('contact_id', ID, nullable=False),
        sa.Column('event_id', ID, nullable=True),
        sa.Column('request', sa.JSON(), nullable=False),
        sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('window_ends_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('released_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('delivery_id', ID, nullable=True),
        sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'],
                                name=op.f('fk_digest_events_contact_id_contacts'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['event_id'], ['events.id'],
                                name=op.f('fk_digest_events_event_id_events'), ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['delivery_id'], ['deliveries.id'],
                                name=op.f('fk_digest_events_delivery_id_deliveries'), ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_digest_events')),
    )
    op.create_index('ix_digest_events_due', 'digest_events', ['released_at', 'window_ends_at'])
    op.create_index('ix_digest_events_open', 'digest_events', ['service_name', 'contact_id', 'released_at'])


def downgrade() -> None:
    op.drop_index('ix_digest_events_open', table_name='digest_events')
    op.drop_index('ix_digest_events_due', table_name='digest_events')
    op.drop_table('digest_events')
    op.drop_index('ix_deliveries_contact_kind', table_name='deliveries')
