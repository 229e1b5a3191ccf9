"""issue 15 workers: one lease per singleton worker step (worker_leases)

Revision ID: b15e0004ea5e
Revises: b15e0003f11e
Create Date: 2026-11-29 19:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b15e0004ea5e'
down_revision = 'b15e0003f11e'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'worker_leases',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('holder', sa.String(length=255), nullable=False),
        sa.Column('lease_until', sa.DateTime(), nullable=False),
        sa.Column('heartbeat', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_worker_leases')),
    )


def downgrade():
    op.drop_table('worker_leases')
