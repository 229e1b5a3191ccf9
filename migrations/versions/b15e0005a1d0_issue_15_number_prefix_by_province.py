"""issue 15 scale: a province's filings by number — the bureau's number-prefix search served as one index range in
number order (at 5,000,000 filings it read and sorted all of a province's matches: 1.4–7 s)

Revision ID: b15e0005a1d0
Revises: b15e0004ea5e
Create Date: 2026-11-29 20:15:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = 'b15e0005a1d0'
down_revision = 'b15e0004ea5e'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_entities_province_number', 'entities', ['province_code', 'number'], unique=False)


def downgrade():
    op.drop_index('ix_entities_province_number', table_name='entities')
