"""issue 15 scale: the dashboards' statistics stored per scope (dashboard_statistics), computed by the worker's
`statistics` step, so that a manager's page reads one row instead of counting its province or the nation (7.0 s
at 5,000,000 websites on PostgreSQL).

Revision ID: b15e0008d5b0
Revises: b15e0007e1a7
Create Date: 2026-11-29 23:45:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'b15e0008d5b0'
down_revision = 'b15e0007e1a7'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'dashboard_statistics',
        sa.Column('scope', sa.String(length=16), nullable=False),
        sa.Column('computed_at', sa.DateTime(), nullable=False),
        sa.Column('payload', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('scope', name=op.f('pk_dashboard_statistics')),
    )


def downgrade():
    op.drop_table('dashboard_statistics')
