"""issue 17 专项查询: the register of special queries (special_query_log) and the indexes that serve the exact
searches by the responsible person (entities, websites) and by the registrant's e-mail and telephone (domain
reports).

Revision ID: b17e0001a000
Revises: b16e0001a000
Create Date: 2026-11-30 02:10:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'b17e0001a000'
down_revision = 'b16e0001a000'
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')

#: (table, index, columns) of the exact searches; an entity's with its province, so that a provincial account's
#: query is one seek however many filings of other provinces share the value
SEARCH_INDEXES = (
    ('entities', 'ix_entities_responsible_name', ['responsible_name', 'province_code']),
    ('entities', 'ix_entities_responsible_id_number', ['responsible_id_number', 'province_code']),
    ('entities', 'ix_entities_responsible_mobile', ['responsible_mobile', 'province_code']),
    ('entities', 'ix_entities_responsible_email', ['responsible_email', 'province_code']),
    ('websites', 'ix_websites_responsible_name', ['responsible_name']),
    ('websites', 'ix_websites_responsible_mobile', ['responsible_mobile']),
    ('domain_reports', 'ix_domain_reports_registrant_email', ['registrant_email']),
    ('domain_reports', 'ix_domain_reports_registrant_phone', ['registrant_phone']),
)


def upgrade():
    op.create_table(
        'special_query_log',
        sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('username', sa.String(length=64), nullable=False),
        sa.Column('province_code', sa.String(length=6), nullable=True),
        sa.Column('action', sa.Enum('search', 'reveal', 'export', name='special_query_action', native_enum=False,
                                    create_constraint=True, length=32), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('term', sa.String(length=253), nullable=False),
        sa.Column('reason', sa.String(length=500), nullable=False),
        sa.Column('case_number', sa.String(length=64), nullable=False),
        sa.Column('results', sa.Integer(), nullable=False),
        sa.Column('record_type', sa.String(length=32), nullable=False),
        sa.Column('record_id', sa.String(length=64), nullable=False),
        sa.Column('ip', sa.String(length=45), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_special_query_log_user_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_special_query_log')),
    )
    op.create_index('ix_special_query_log_province_id', 'special_query_log', ['province_code', 'id'])
    op.create_index('ix_special_query_log_user_id', 'special_query_log', ['user_id', 'id'])
    op.create_index('ix_special_query_log_at', 'special_query_log', ['at'])
    op.create_index('ix_special_query_log_case_number', 'special_query_log', ['case_number'])
    for table, name, columns in SEARCH_INDEXES:
        op.create_index(name, table, columns)


def downgrade():
    for table, name, _columns in reversed(SEARCH_INDEXES):
        op.drop_index(name, table_name=table)
    op.drop_index('ix_special_query_log_case_number', table_name='special_query_log')
    op.drop_index('ix_special_query_log_at', table_name='special_query_log')
    op.drop_index('ix_special_query_log_user_id', table_name='special_query_log')
    op.drop_index('ix_special_query_log_province_id', table_name='special_query_log')
    op.drop_table('special_query_log')
