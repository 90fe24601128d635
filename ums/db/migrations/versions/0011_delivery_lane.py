"""deliveries.lane: priority lanes (urgent, notice, marketing)

Existing campaign and advertising deliveries become ``marketing``, the rest
``notice``; the claim index gains the lane so each lane is walked in due order.

Revision ID: 0011
Revises: 0010
"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lane', sa.String(length=16), nullable=False, server_default='notice'))
    op.execute("UPDATE deliveries SET lane = 'marketing' WHERE campaign_id IS NOT NULL OR kind = 'advertising'")
    op.drop_index('ix_deliveries_claim', table_name='deliveries')
    op.create_index('ix_deliveries_claim', 'deliveries', ['state', 'lane', 'due_at'])


def downgrade() -> None:
    op.drop_index('ix_deliveries_claim', table_name='deliveries')
    op.create_index('ix_deliveries_claim', 'deliveries', ['state', 'due_at'])
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_column('lane')
