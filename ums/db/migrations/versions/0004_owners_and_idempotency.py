"""eps_services.system (the back-office system that owns a service) and
idempotent_requests (an API answer kept for its Idempotency-Key)

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('eps_services', schema=None) as batch_op:
        batch_op.add_column(sa.Column('system', sa.String(length=64), nullable=True))
    op.create_table('idempotent_requests',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('owner', sa.String(length=128), nullable=False),
    sa.Column('idempotency_key', sa.String(length=128), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('status', sa.Integer(), nullable=False),
    sa.Column('response', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_idempotent_requests')),
    sa.UniqueConstraint('owner', 'idempotency_key', name='uq_idempotent_requests_owner_key')
    )


def downgrade() -> None:
    op.drop_table('idempotent_requests')
    with op.batch_alter_table('eps_services', schema=None) as batch_op:
        batch_op.drop_column('system')
