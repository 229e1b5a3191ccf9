"""issue 11 imports: worker leases, staged import rows

Revision ID: a11e0002f11e
Revises: a11e0001f11e
Create Date: 2026-11-29 12:50:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'a11e0002f11e'
down_revision = 'a11e0001f11e'
branch_labels = None
depends_on = None


STAGED_TABLES = ('entities', 'websites', 'preapproval_items', 'accesses', 'applications', 'isp_verifications')


def upgrade():
    for table in STAGED_TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('import_job_id', sa.Integer(), nullable=True))
    with op.batch_alter_table('import_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('error_count', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('lease_until', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('attempts', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('staging', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.create_index('ix_import_jobs_staging', ['staging'], unique=False)
    # the jobs refused before this revision: their error lists are complete
    op.execute("UPDATE import_jobs SET error_count = (LENGTH(errors) - LENGTH(REPLACE(errors, '\"row\":', ''))) / 6")


def downgrade():
    with op.batch_alter_table('import_jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_import_jobs_staging')
        batch_op.drop_column('staging')
        batch_op.drop_column('attempts')
        batch_op.drop_column('lease_until')
        batch_op.drop_column('error_count')
    for table in reversed(STAGED_TABLES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('import_job_id')
