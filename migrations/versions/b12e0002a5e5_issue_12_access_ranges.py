"""issue 12: access ranges indexed for the public lookup by IP address

Revision ID: b12e0002a5e5
Revises: b12e0001d3ad
Create Date: 2026-11-29 13:40:00

"""
from alembic import op
import sqlalchemy as sa

import ipindex  # pure, no database: safe to use in a migration


# revision identifiers, used by Alembic.
revision = 'b12e0002a5e5'
down_revision = 'b12e0001d3ad'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade():
    ranges = op.create_table('access_ranges',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('access_id', BigId, nullable=False),
    sa.Column('bucket', sa.String(length=40), nullable=False),
    sa.Column('start_key', sa.String(length=32), nullable=False),
    sa.Column('end_key', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['access_id'], ['accesses.id'], name=op.f('fk_access_ranges_access_id_accesses'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_access_ranges'))
    )
    op.create_index('ix_access_ranges_access_id', 'access_ranges', ['access_id'])
    op.create_index('ix_access_ranges_bucket', 'access_ranges', ['bucket', 'start_key'])
    # the live accesses of approved websites filed so far
    found = op.get_bind().execute(sa.text(
        "SELECT accesses.id, accesses.ip_ranges FROM accesses JOIN websites ON websites.id = accesses.website_id "
        "WHERE accesses.live AND accesses.ip_ranges != '' AND websites.status IN ('active', 'no_access')"))
    rows = [{"access_id": access_id, "bucket": bucket, "start_key": first, "end_key": last}
            for access_id, text in found for bucket, first, last in ipindex.range_rows(text)]
    if rows:
        op.bulk_insert(ranges, rows)


def downgrade():
    op.drop_index('ix_access_ranges_bucket', table_name='access_ranges')
    op.drop_index('ix_access_ranges_access_id', table_name='access_ranges')
    op.drop_table('access_ranges')
