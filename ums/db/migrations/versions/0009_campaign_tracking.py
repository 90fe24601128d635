"""campaigns.tracking: engagement tracking, opt-in per campaign (off for
every existing campaign); tracking_events: the first open and the first
click on each link of each delivery (one row each, so a recipient counts
once however often they look); site_secrets: keys shared by every process
through the database (the HMAC key of tracking links).

Revision ID: 0009
Revises: 0008
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tracking', sa.Boolean(), server_default='0', nullable=False))
    op.create_table(
        'tracking_events',
        sa.Column('id', ID, autoincrement=True, nullable=False),
        sa.Column('campaign_id', ID, nullable=False),
        sa.Column('delivery_id', ID, nullable=False),
        sa.Column('contact_id', ID, nullable=True),
        sa.Column('kind', sa.String(length=8), nullable=False),
        sa.Column('link', sa.String(length=32), nullable=False),
        sa.Column('url', sa.Text(), nullable=True),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_tracking_events_campaign_id_campaigns'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['delivery_id'], ['deliveries.id'], name=op.f('fk_tracking_events_delivery_id_deliveries'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_tracking_events_contact_id_contacts'),
                                ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_tracking_events')),
        sa.UniqueConstraint('delivery_id', 'kind', 'link', name='uq_tracking_events_once'),
    )
    op.create_index('ix_tracking_events_campaign', 'tracking_events', ['campaign_id', 'kind'], unique=False)
    op.create_index(op.f('ix_tracking_events_contact_id'), 'tracking_events', ['contact_id'], unique=False)
    op.create_table(
        'site_secrets',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('value', sa.String(length=128), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_site_secrets')),
    )


def downgrade() -> None:
    op.drop_table('site_secrets')
    op.drop_index(op.f('ix_tracking_events_contact_id'), table_name='tracking_events')
    op.drop_index('ix_tracking_events_campaign', table_name='tracking_events')
    op.drop_table('tracking_events')
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_column('tracking')
