"""issue 12 search: indexes for the console's search box and filters (certificate number prefix, a province's
unit names, approval dates, unit nature; prefix patterns of the numbers on PostgreSQL)

Revision ID: b12e0003c0de
Revises: b12e0002a5e5
Create Date: 2026-11-29 14:00:00

"""
from alembic import op

# revision identifiers, used by Alembic.
revision = 'b12e0003c0de'
down_revision = 'b12e0002a5e5'
branch_labels = None
depends_on = None

#: (name, table, columns) on both databases
INDEXES = [
    ('ix_entities_province_unit_name', 'entities', ['province_code', 'unit_name']),
    ('ix_entities_province_approved', 'entities', ['province_code', 'approved_at']),
    ('ix_entities_approved_at', 'entities', ['approved_at']),
    ('ix_entities_province_nature', 'entities', ['province_code', 'unit_nature', 'id']),
]
#: prefix search (LIKE 'x%') on PostgreSQL needs varchar_pattern_ops; SQLite's unique indexes serve its ranges
PATTERNS = [
    ('ix_entities_number_pattern', 'entities', 'number'),
    ('ix_entities_licence_number_pattern', 'entities', 'licence_number'),
    ('ix_websites_number_pattern', 'websites', 'number'),
]


def upgrade():
    op.create_index('ix_entities_certificate_number', 'entities', ['certificate_number'], unique=False,
                    postgresql_ops={'certificate_number': 'varchar_pattern_ops'})
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns, unique=False)
    if op.get_bind().dialect.name == 'postgresql':
        for name, table, column in PATTERNS:
            op.create_index(name, table, [column], unique=False, postgresql_ops={column: 'varchar_pattern_ops'})


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        for name, table, _column in PATTERNS:
            op.drop_index(name, table_name=table)
    for name, table, _columns in INDEXES:
        op.drop_index(name, table_name=table)
    op.drop_index('ix_entities_certificate_number', table_name='entities')
