"""issue 14 domain reporting: the registrars' reports, the registrant check's flags and the reconciliation queue;
the domain-type code table

Revision ID: b14e0001d0a1
Revises: b13e0001a1b0
Create Date: 2026-11-29 16:00:00

"""
from alembic import op
import sqlalchemy as sa

import validators  # pure, no database: safe to use in a migration


# revision identifiers, used by Alembic.
revision = 'b14e0001d0a1'
down_revision = 'b13e0001a1b0'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
OLD_TABLES = ('unit_nature', 'certificate_type', 'service_content', 'preapproval_category', 'access_method',
              'language', 'unit_class', 'industry', 'ip_allocation_method', 'ip_usage_method', 'ip_registry')
NEW_TABLES = OLD_TABLES + ('domain_type',)
LIVE_REPORT = "status != 'deleted'"
OPEN_FLAG = "resolved_at IS NULL"
#: prefix search (LIKE 'x%') on PostgreSQL needs varchar_pattern_ops
PATTERNS = [('ix_domain_reports_domain_pattern', 'domain'), ('ix_domain_reports_registrant_pattern', 'registrant_name')]
CONTACT = [('name', 128), ('organisation', 128), ('certificate_type', 16), ('certificate_number', 64),
           ('address', 255), ('province_code', 6), ('city', 64), ('email', 254), ('phone', 32)]


def _table_check(tables: tuple[str, ...]) -> sa.TextClause:
    return sa.text('"table" IN (' + ", ".join(f"'{name}'" for name in tables) + ")")


def _contact(prefix: str) -> list[sa.Column]:
    return [sa.Column(f'{prefix}_{name}', sa.String(length=length), nullable=name == 'province_code')
            for name, length in CONTACT]


def _fill_registered() -> None:
    """Each filed domain's registered domain, in batches (keyset by id)."""
    bind, last = op.get_bind(), 0
    while True:
        rows = bind.execute(sa.text("SELECT id, name FROM domains WHERE id > :last ORDER BY id LIMIT 5000"),
                            {"last": last}).all()
        if not rows:
            return
        bind.execute(sa.text("UPDATE domains SET registered = :registered WHERE id = :id"),
                     [{"id": row_id, "registered": validators.registered_domain(name)} for row_id, name in rows])
        last = rows[-1][0]


def upgrade():
    with op.batch_alter_table('domains', schema=None) as batch_op:
        batch_op.add_column(sa.Column('registered', sa.String(length=253), nullable=False, server_default=''))
    _fill_registered()
    op.create_index('ix_domains_registered', 'domains', ['registered'])
    with op.batch_alter_table('code_items', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_code_items_code_table'), type_='check')
        batch_op.create_check_constraint('code_table', _table_check(NEW_TABLES))

    op.create_table('domain_reports',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('registrar_id', sa.Integer(), nullable=False),
    sa.Column('domain', sa.String(length=253), nullable=False),
    sa.Column('domain_type', sa.String(length=16), nullable=False),
    sa.Column('registered_on', sa.Date(), nullable=False),
    sa.Column('expires_on', sa.Date(), nullable=False),
    sa.Column('registrar_name', sa.String(length=128), nullable=False),
    sa.Column('name_servers', sa.Text(), nullable=False),
    sa.Column('status', sa.Enum('normal', 'suspended', 'expired', 'deleted', name='domain_status', native_enum=False, create_constraint=True, length=32), nullable=False),
    *_contact('registrant'),
    *_contact('admin'),
    sa.Column('payer_name', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['registrar_id'], ['users.id'], name=op.f('fk_domain_reports_registrar_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_domain_reports'))
    )
    op.create_index('uq_domain_reports_live_domain', 'domain_reports', ['domain'], unique=True,
                    sqlite_where=sa.text(LIVE_REPORT), postgresql_where=sa.text(LIVE_REPORT))
    op.create_index('ix_domain_reports_domain', 'domain_reports', ['domain', 'id'])
    op.create_index('ix_domain_reports_registrar', 'domain_reports', ['registrar_id', 'domain'])
    op.create_index('ix_domain_reports_registrant_name', 'domain_reports', ['registrant_name'])
    op.create_index('ix_domain_reports_registrant_certificate', 'domain_reports', ['registrant_certificate_number'])
    op.create_index('ix_domain_reports_expires', 'domain_reports', ['expires_on'])
    if op.get_bind().dialect.name == 'postgresql':
        for name, column in PATTERNS:
            op.create_index(name, 'domain_reports', [column], postgresql_ops={column: 'varchar_pattern_ops'})

    op.create_table('domain_flags',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('website_id', BigId, nullable=False),
    sa.Column('province_code', sa.String(length=6), nullable=False),
    sa.Column('domain', sa.String(length=253), nullable=False),
    sa.Column('verdict', sa.Enum('consistent', 'expiring', 'inconsistent', 'unreported', 'expired', 'deleted', name='domain_verdict', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('since', sa.DateTime(), nullable=False),
    sa.Column('notified_at', sa.DateTime(), nullable=True),
    sa.Column('resolved_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['website_id'], ['websites.id'], name=op.f('fk_domain_flags_website_id_websites'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_domain_flags'))
    )
    op.create_index('uq_domain_flags_open', 'domain_flags', ['website_id', 'domain'], unique=True,
                    sqlite_where=sa.text(OPEN_FLAG), postgresql_where=sa.text(OPEN_FLAG))
    op.create_index('ix_domain_flags_province', 'domain_flags', ['province_code', 'resolved_at', 'id'])
    op.create_index('ix_domain_flags_domain', 'domain_flags', ['domain'])

    op.create_table('domain_changes',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('domain', sa.String(length=253), nullable=False),
    sa.Column('what', sa.String(length=255), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('processed_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_domain_changes'))
    )
    op.create_index('ix_domain_changes_pending', 'domain_changes', ['processed_at', 'id'])
    op.create_index('ix_domain_changes_domain', 'domain_changes', ['domain', 'what'])
    # the filings approved before the check existed: every live filed domain queued once, for the worker to flag
    now = "timezone('utc', now())" if op.get_bind().dialect.name == 'postgresql' else "CURRENT_TIMESTAMP"
    op.execute(f"INSERT INTO domain_changes (domain, what, at) SELECT DISTINCT domains.registered, 'filed', {now} "
               "FROM domains JOIN websites ON websites.id = domains.website_id "
               "WHERE domains.live AND websites.status IN ('active', 'no_access')")


def downgrade():
    op.drop_index('ix_domain_changes_domain', table_name='domain_changes')
    op.drop_index('ix_domain_changes_pending', table_name='domain_changes')
    op.drop_table('domain_changes')
    for name in ('ix_domain_flags_domain', 'ix_domain_flags_province', 'uq_domain_flags_open'):
        op.drop_index(name, table_name='domain_flags')
    op.drop_table('domain_flags')
    if op.get_bind().dialect.name == 'postgresql':
        for name, _column in PATTERNS:
            op.drop_index(name, table_name='domain_reports')
    for name in ('ix_domain_reports_expires', 'ix_domain_reports_registrant_certificate',
                 'ix_domain_reports_registrant_name', 'ix_domain_reports_registrar', 'ix_domain_reports_domain',
                 'uq_domain_reports_live_domain'):
        op.drop_index(name, table_name='domain_reports')
    op.drop_table('domain_reports')
    op.execute("DELETE FROM code_items WHERE \"table\" = 'domain_type'")
    with op.batch_alter_table('code_items', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_code_items_code_table'), type_='check')
        batch_op.create_check_constraint('code_table', _table_check(OLD_TABLES))
    op.drop_index('ix_domains_registered', table_name='domains')
    with op.batch_alter_table('domains', schema=None) as batch_op:
        batch_op.drop_column('registered')
