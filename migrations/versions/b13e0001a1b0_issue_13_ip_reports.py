"""issue 13 IP address reporting: source blocks, allocations, self-brought blocks, findings; cities and counties;
an IP reporting unit's access-provider account; the IP code tables as the specification has them

Revision ID: b13e0001a1b0
Revises: b12e0003c0de
Create Date: 2026-11-29 15:40:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b13e0001a1b0'
down_revision = 'b12e0003c0de'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
OLD_TABLES = ('unit_nature', 'certificate_type', 'service_content', 'preapproval_category', 'access_method',
              'language', 'unit_class', 'industry', 'ip_allocation_method', 'ip_usage_method')
NEW_TABLES = OLD_TABLES + ('ip_registry',)
#: on PostgreSQL the database itself refuses overlapping source blocks (the workflow checks first, for the message)
PG_OBJECTS = [
    "CREATE FUNCTION ipkey_inet(key text) RETURNS inet LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE "
    "AS $$ SELECT regexp_replace(key, '(....)(?!$)', '\\1:', 'g')::inet $$",
    "CREATE TYPE ipkey_range AS RANGE (subtype = inet)",
    "ALTER TABLE ip_blocks ADD CONSTRAINT ex_ip_blocks_reported_overlap EXCLUDE USING gist "
    "(ipkey_range(ipkey_inet(start_key), ipkey_inet(end_key), '[]') WITH &&) WHERE (NOT derived)",
]


def _table_check(tables: tuple[str, ...]) -> sa.TextClause:
    return sa.text('"table" IN (' + ", ".join(f"'{name}'" for name in tables) + ")")


def _user_unit_columns() -> list[sa.Column]:
    return [
        sa.Column('user_name', sa.String(length=128), nullable=False),
        sa.Column('user_nature', sa.String(length=16), nullable=False),
        sa.Column('user_category', sa.String(length=16), nullable=False),
        sa.Column('user_industry', sa.String(length=16), nullable=False),
        sa.Column('province_code', sa.String(length=6), nullable=True),
        sa.Column('city_code', sa.String(length=6), nullable=True),
        sa.Column('county_code', sa.String(length=6), nullable=True),
        sa.Column('address', sa.String(length=255), nullable=False),
        sa.Column('contact_name', sa.String(length=64), nullable=False),
        sa.Column('contact_phone', sa.String(length=32), nullable=False),
        sa.Column('contact_email', sa.String(length=254), nullable=False),
        sa.Column('usage', sa.String(length=1), nullable=True),
        sa.Column('allocated_on', sa.Date(), nullable=True),
        sa.Column('gateway_ip', sa.String(length=45), nullable=False),
        sa.Column('gateway_location', sa.String(length=255), nullable=False),
        sa.Column('redirect_server', sa.Boolean(), nullable=False),
        sa.Column('remark', sa.String(length=255), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
    ]


def _range_columns() -> list[sa.Column]:
    return [
        sa.Column('family', sa.Integer(), nullable=False),
        sa.Column('start_key', sa.String(length=32), nullable=False),
        sa.Column('end_key', sa.String(length=32), nullable=False),
    ]


def upgrade():
    op.create_table('divisions',
    sa.Column('code', sa.String(length=6), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('parent_code', sa.String(length=6), nullable=False),
    sa.Column('level', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_divisions'))
    )
    op.create_index('ix_divisions_parent', 'divisions', ['parent_code', 'code'])

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('isp_account_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_users_isp_account_id_users'), 'users', ['isp_account_id'], ['id'])
    with op.batch_alter_table('code_items', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_code_items_code_table'), type_='check')
        batch_op.create_check_constraint('code_table', _table_check(NEW_TABLES))
    with op.batch_alter_table('import_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=16), nullable=False, server_default='filings'))

    op.create_table('ip_blocks',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    *_range_columns(),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('origin', sa.Enum('registry', 'unit', 'allocation', name='ip_origin', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('derived', sa.Boolean(), nullable=False),
    sa.Column('registry_code', sa.String(length=16), nullable=True),
    sa.Column('source_unit_id', sa.Integer(), nullable=True),
    sa.Column('allocation_id', BigId, nullable=True),
    sa.Column('remark', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("start_key <= end_key", name=op.f('ck_ip_blocks_start_before_end')),
    sa.CheckConstraint("(origin = 'allocation') = (allocation_id IS NOT NULL)", name=op.f('ck_ip_blocks_derived_has_allocation')),
    sa.ForeignKeyConstraint(['unit_id'], ['users.id'], name=op.f('fk_ip_blocks_unit_id_users')),
    sa.ForeignKeyConstraint(['source_unit_id'], ['users.id'], name=op.f('fk_ip_blocks_source_unit_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ip_blocks')),
    sa.UniqueConstraint('allocation_id', name=op.f('uq_ip_blocks_allocation_id'))
    )
    op.create_index('ix_ip_blocks_derived_start', 'ip_blocks', ['derived', 'start_key'])
    op.create_index('ix_ip_blocks_unit_start', 'ip_blocks', ['unit_id', 'start_key'])
    op.create_index('ix_ip_blocks_source_unit_id', 'ip_blocks', ['source_unit_id'])

    op.create_table('ip_allocations',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    *_range_columns(),
    *_user_unit_columns(),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('block_id', BigId, nullable=False),
    sa.Column('method', sa.String(length=1), nullable=False),
    sa.Column('target_unit_id', sa.Integer(), nullable=True),
    sa.CheckConstraint("start_key <= end_key", name=op.f('ck_ip_allocations_start_before_end')),
    sa.CheckConstraint("(method = '2') = (target_unit_id IS NOT NULL)", name=op.f('ck_ip_allocations_target_iff_reallocated')),
    sa.ForeignKeyConstraint(['unit_id'], ['users.id'], name=op.f('fk_ip_allocations_unit_id_users')),
    sa.ForeignKeyConstraint(['block_id'], ['ip_blocks.id'], name=op.f('fk_ip_allocations_block_id_ip_blocks')),
    sa.ForeignKeyConstraint(['target_unit_id'], ['users.id'], name=op.f('fk_ip_allocations_target_unit_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ip_allocations'))
    )
    op.create_index('ix_ip_allocations_unit_start', 'ip_allocations', ['unit_id', 'start_key'])
    op.create_index('ix_ip_allocations_block_start', 'ip_allocations', ['block_id', 'start_key'])
    op.create_index('ix_ip_allocations_target_unit_id', 'ip_allocations', ['target_unit_id'])
    with op.batch_alter_table('ip_blocks', schema=None) as batch_op:
        batch_op.create_foreign_key(batch_op.f('fk_ip_blocks_allocation_id_ip_allocations'), 'ip_allocations',
                                    ['allocation_id'], ['id'], ondelete='CASCADE')

    op.create_table('ip_self_brought',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    *_range_columns(),
    *_user_unit_columns(),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('source_unit_id', sa.Integer(), nullable=True),
    sa.Column('source_name', sa.String(length=128), nullable=False),
    sa.CheckConstraint("start_key <= end_key", name=op.f('ck_ip_self_brought_start_before_end')),
    sa.ForeignKeyConstraint(['unit_id'], ['users.id'], name=op.f('fk_ip_self_brought_unit_id_users')),
    sa.ForeignKeyConstraint(['source_unit_id'], ['users.id'], name=op.f('fk_ip_self_brought_source_unit_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ip_self_brought'))
    )
    op.create_index('ix_ip_self_brought_unit_start', 'ip_self_brought', ['unit_id', 'start_key'])
    op.create_index('ix_ip_self_brought_start', 'ip_self_brought', ['start_key'])

    op.create_table('ip_findings',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    *_range_columns(),
    sa.Column('kind', sa.Enum('out_of_bounds', 'conflict', 'unreported', name='ip_finding_kind', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('code', sa.String(length=8), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('province_code', sa.String(length=6), nullable=True),
    sa.Column('other_unit_id', sa.Integer(), nullable=True),
    sa.Column('record_kind', sa.String(length=16), nullable=False),
    sa.Column('record_id', BigId, nullable=True),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('computed_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['unit_id'], ['users.id'], name=op.f('fk_ip_findings_unit_id_users')),
    sa.ForeignKeyConstraint(['other_unit_id'], ['users.id'], name=op.f('fk_ip_findings_other_unit_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ip_findings'))
    )
    op.create_index('ix_ip_findings_unit', 'ip_findings', ['unit_id', 'kind', 'id'])
    op.create_index('ix_ip_findings_province', 'ip_findings', ['province_code', 'kind', 'id'])
    op.create_index('ix_ip_findings_kind', 'ip_findings', ['kind', 'id'])

    op.create_table('ip_findings_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('stale', sa.Boolean(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=True),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.Column('findings', sa.Integer(), nullable=False),
    sa.Column('seconds', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ip_findings_runs'))
    )

    if op.get_bind().dialect.name == 'postgresql':
        for statement in PG_OBJECTS:
            op.execute(statement)

    # the specification's 分配方式 and 使用方式 (the first seed had other names; MIIT had nothing to edit yet)
    for table, code, name in [('ip_allocation_method', '1', '分配并使用'), ('ip_allocation_method', '2', '再分配'),
                              ('ip_allocation_method', '3', '自用'), ('ip_allocation_method', '4', '预留'),
                              ('ip_usage_method', '1', '静态'), ('ip_usage_method', '2', '动态'),
                              ('ip_usage_method', '3', '未知')]:
        op.execute(sa.text('UPDATE code_items SET name = :name WHERE "table" = :table AND code = :code')
                   .bindparams(name=name, table=table, code=code))
    op.execute("DELETE FROM code_items WHERE \"table\" = 'ip_usage_method' AND code NOT IN ('1', '2', '3')")


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("ALTER TABLE ip_blocks DROP CONSTRAINT ex_ip_blocks_reported_overlap")
        op.execute("DROP TYPE ipkey_range")
        op.execute("DROP FUNCTION ipkey_inet(text)")
    op.drop_table('ip_findings_runs')
    for name in ('ix_ip_findings_kind', 'ix_ip_findings_province', 'ix_ip_findings_unit'):
        op.drop_index(name, table_name='ip_findings')
    op.drop_table('ip_findings')
    op.drop_index('ix_ip_self_brought_start', table_name='ip_self_brought')
    op.drop_index('ix_ip_self_brought_unit_start', table_name='ip_self_brought')
    op.drop_table('ip_self_brought')
    with op.batch_alter_table('ip_blocks', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_ip_blocks_allocation_id_ip_allocations'), type_='foreignkey')
    for name in ('ix_ip_allocations_target_unit_id', 'ix_ip_allocations_block_start', 'ix_ip_allocations_unit_start'):
        op.drop_index(name, table_name='ip_allocations')
    op.drop_table('ip_allocations')
    for name in ('ix_ip_blocks_source_unit_id', 'ix_ip_blocks_unit_start', 'ix_ip_blocks_derived_start'):
        op.drop_index(name, table_name='ip_blocks')
    op.drop_table('ip_blocks')
    op.execute("DELETE FROM code_items WHERE \"table\" = 'ip_registry'")
    with op.batch_alter_table('code_items', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_code_items_code_table'), type_='check')
        batch_op.create_check_constraint('code_table', _table_check(OLD_TABLES))
    with op.batch_alter_table('import_jobs', schema=None) as batch_op:
        batch_op.drop_column('kind')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_users_isp_account_id_users'), type_='foreignkey')
        batch_op.drop_column('isp_account_id')
    op.drop_index('ix_divisions_parent', table_name='divisions')
    op.drop_table('divisions')
