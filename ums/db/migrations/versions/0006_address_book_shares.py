"""address_book_shares: who a shared or organisation address book is shared
with (a role, ``api`` for API keys, or a named user); an index on
address_book_entries.contact_id (whether a contact is in any book decides who
sees it, asked for every contact listed)

Existing shared books had no sharing and were shown to everyone; they are
shared with the staff roles (admin, operator, marketer) so staff keep seeing
them, and mailbox users see them only once an admin shares them.

Revision ID: 0006
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

STAFF = ("admin", "operator", "marketer")


def upgrade() -> None:
    shares = op.create_table('address_book_shares',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('book_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=True),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.ForeignKeyConstraint(['book_id'], ['address_books.id'], name=op.f('fk_address_book_shares_book_id_address_books'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_address_book_shares_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_address_book_shares'))
    )
    with op.batch_alter_table('address_book_shares', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_address_book_shares_book_id'), ['book_id'], unique=False)
    with op.batch_alter_table('address_book_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_address_book_entries_contact_id'), ['contact_id'], unique=False)
    books = sa.table('address_books', sa.column('id'), sa.column('scope'))
    shared = [row.id for row in op.get_bind().execute(sa.select(books.c.id).where(books.c.scope == 'shared'))]
    if shared:
        op.bulk_insert(shares, [{'book_id': book_id, 'role': role} for book_id in shared for role in STAFF])


def downgrade() -> None:
    with op.batch_alter_table('address_book_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_address_book_entries_contact_id'))
    with op.batch_alter_table('address_book_shares', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_address_book_shares_book_id'))
    op.drop_table('address_book_shares')
