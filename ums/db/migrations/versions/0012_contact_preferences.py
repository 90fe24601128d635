"""contact_preferences: what a customer chose on the preference centre —
channels and topics turned off and a preferred channel (one row per contact,
none until they first save). Consent records and suppression already exist;
the centre writes those too.

Revision ID: 0012
Revises: 0011
"""
from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'contact_preferences',
        sa.Column('contact_id', ID, nullable=False),
        sa.Column('channels_off', sa.JSON(), nullable=False),
        sa.Column('topics_off', sa.JSON(), nullable=False),
        sa.Column('preferred_channel', sa.String(length=8), nullable=True),
        sa.Column('source', sa.String(length=128), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'],
                                name=op.f('fk_contact_preferences_contact_id_contacts'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('contact_id', name=op.f('pk_contact_preferences')),
    )


def downgrade() -> None:
    op.drop_table('contact_preferences')
