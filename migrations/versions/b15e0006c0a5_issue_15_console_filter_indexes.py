"""issue 15 scale: the console's filters read inside their index — the columns the queue's and the filings list's
filters test become key columns of the index that serves the list's order, so that a page walks one index in its
order, skips what does not match without reading the table, and counts from the index alone (at 5,000,000 filings
the counts read up to 10,001 table rows and the filtered lists sorted thousands of matches: 150–700 ms).

Each index but the queue's replaces the narrower one it extends (same leading columns), so a write updates as many
indexes as before; the queue's is partial (the applications under bureau review: 800,000 of 5,340,000) and
PostgreSQL's only (SQLite's planner keeps ix_applications_deadline for the queue). On PostgreSQL they may have
been built beforehand with CREATE INDEX CONCURRENTLY under these names (a large database): `if_not_exists` then
makes this upgrade instant.

Revision ID: b15e0006c0a5
Revises: b15e0005a1d0
Create Date: 2026-11-29 22:30:00

"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = 'b15e0006c0a5'
down_revision = 'b15e0005a1d0'
branch_labels = None
depends_on = None

REVIEW_QUEUE = "state = 'bureau_review'"
#: (table, new index, its columns, the index it replaces, that one's columns)
REPLACED = (
    ('entities', 'ix_entities_province_id_filters', ['province_code', 'id', 'status', 'unit_nature', 'approved_at'],
     'ix_entities_province_id', ['province_code', 'id']),
    ('entities', 'ix_entities_province_approved_filters', ['province_code', 'approved_at', 'status', 'unit_nature'],
     'ix_entities_province_approved', ['province_code', 'approved_at']),
    ('entities', 'ix_entities_province_number_status', ['province_code', 'number', 'status'],
     'ix_entities_province_number', ['province_code', 'number']),
    ('websites', 'ix_websites_entity_covering', ['entity_id', 'id', 'import_job_id'],
     'ix_websites_entity_id', ['entity_id']),
    ('preapproval_items', 'ix_preapproval_items_website_category', ['website_id', 'category'],
     'ix_preapproval_items_website_id', ['website_id']),
)


def upgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.create_index('ix_applications_review_queue', 'applications',
                        ['province_code', 'due_at', 'kind', 'submitted_by_id', 'submitted_at', 'entity_id'],
                        unique=False, if_not_exists=True, postgresql_where=sa.text(REVIEW_QUEUE))
    for table, new, columns, old, _old_columns in REPLACED:
        op.create_index(new, table, columns, unique=False, if_not_exists=True)
        op.drop_index(old, table_name=table, if_exists=True)


def downgrade():
    for table, new, _columns, old, old_columns in reversed(REPLACED):
        op.create_index(old, table, old_columns, unique=False, if_not_exists=True)
        op.drop_index(new, table_name=table, if_exists=True)
    if op.get_bind().dialect.name == 'postgresql':
        op.drop_index('ix_applications_review_queue', table_name='applications', if_exists=True)
