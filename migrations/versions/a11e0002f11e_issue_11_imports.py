"""issue 11 imports: worker leases, staged import rows

Revision ID: a11e0002f11e
Revises: a11e0001f11e
Create Date: 2026-11-29 12:50:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a11e0002f11e'
down_revision = 'a11e0001f11e'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
