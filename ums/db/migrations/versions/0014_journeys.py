"""journeys, journey_runs, journey_steps: multi-step flows, one durable run per
customer per journey (advanced by compare-and-set on its version) and each
run's step history. tracking_events.campaign_id becomes nullable so a
journey's email (no campaign) can count its opens and clicks too.

Revision ID: 0014
Revises: 0013_caps_digest
"""
from alembic import op
import sqlalchemy as sa


revision = '0014'
down_revision = '0013_caps_digest'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'journeys',
        sa.Column('id', ID, autoincrement=True, nullable=False),
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('event_type', sa.String(length=64), nullable=True),
        sa.Column('state', sa.String(length=16), server_default='active', nullable=False),
        sa.Column('definition', sa.JSON(), nullable=False),
        sa.Column('created_by', sa.String(length=64), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_journeys')),
        sa.UniqueConstraint('name', name=op.f('uq_journeys_name')),
    )
    op.create_index(op.f('ix_journeys_event_type'), 'journeys', ['event_type'])
    op.create_table(
        'journey_runs',
        sa.Column('id', ID, autoincrement=True, nullable=False),
        sa.Column('journey_id', ID, nullable=False),
        sa.Column('contact_id', ID, nullable=False),
        sa.Column('step', sa.String(length=64), nullable=True),
        sa.Column('state', sa.String(length=16), server_default='active', nullable=False),
        sa.Column('version', sa.Integer(), server_default='0', nullable=False),
        sa.Column('next_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('source', sa.String(length=128), nullable=True),
        sa.Column('entered_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['journey_id'], ['journeys.id'], name=op.f('fk_journey_runs_journey_id_journeys'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_journey_runs_contact_id_contacts'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_journey_runs')),
        sa.UniqueConstraint('journey_id', 'contact_id', name='uq_journey_runs_journey_contact'),
    )
    op.create_index(op.f('ix_journey_runs_contact_id'), 'journey_runs', ['contact_id'])
    op.create_index('ix_journey_runs_due', 'journey_runs', ['state', 'next_at'])
    op.create_table(
        'journey_steps',
        sa.Column('id', ID, autoincrement=True, nullable=False),
        sa.Column('run_id', ID, nullable=False),
        sa.Column('step', sa.String(length=64), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('delivery_id', ID, nullable=True),
        sa.Column('outcome', sa.String(length=64), nullable=True),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['run_id'], ['journey_runs.id'], name=op.f('fk_journey_steps_run_id_journey_runs'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['delivery_id'], ['deliveries.id'],
                                name=op.f('fk_journey_steps_delivery_id_deliveries'), ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_journey_steps')),
    )
    op.create_index(op.f('ix_journey_steps_run_id'), 'journey_steps', ['run_id'])
    with op.batch_alter_table('tracking_events', schema=None) as batch_op:
        batch_op.alter_column('campaign_id', existing_type=ID, nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM tracking_events WHERE campaign_id IS NULL")
    with op.batch_alter_table('tracking_events', schema=None) as batch_op:
        batch_op.alter_column('campaign_id', existing_type=ID, nullable=False)
    op.drop_index(op.f('ix_journey_steps_run_id'), table_name='journey_steps')
    op.drop_table('journey_steps')
    op.drop_index('ix_journey_runs_due', table_name='journey_runs')
    op.drop_index(op.f('ix_journey_runs_contact_id'), table_name='journey_runs')
    op.drop_table('journey_runs')
    op.drop_index(op.f('ix_journeys_event_type'), table_name='journeys')
    op.drop_table('journeys')
