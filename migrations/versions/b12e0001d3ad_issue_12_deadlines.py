"""issue 12 deadlines: when an application entered bureau review and its statutory deadline; the daily
reminders sent; indexes for the queue by deadline and the dashboards

Revision ID: b12e0001d3ad
Revises: a11e0003f11e
Create Date: 2026-11-29 13:40:00

"""
from alembic import op
import sqlalchemy as sa

import deadlines  # pure, no database: safe to use in a migration


# revision identifiers, used by Alembic.
revision = 'b12e0001d3ad'
down_revision = 'a11e0003f11e'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def _backfill() -> None:
    """Applications already in bureau review: their submission counts as the complete submission."""
    applications = sa.table('applications', sa.column('id', sa.Integer), sa.column('state', sa.String),
                            sa.column('submitted_at', sa.DateTime), sa.column('bureau_since', sa.DateTime),
                            sa.column('due_at', sa.DateTime))
    connection = op.get_bind()
    rows = connection.execute(sa.select(applications.c.id, applications.c.submitted_at).where(
        applications.c.state == 'bureau_review', applications.c.submitted_at.is_not(None))).all()
    if rows:
        connection.execute(applications.update().where(applications.c.id == sa.bindparam('row_id')).values(
            bureau_since=sa.bindparam('since'), due_at=sa.bindparam('due')),
            [{'row_id': row_id, 'since': since, 'due': deadlines.due_at(since)} for row_id, since in rows])


def upgrade():
    with op.batch_alter_table('applications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('bureau_since', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('due_at', sa.DateTime(), nullable=True))
        batch_op.create_index('ix_applications_deadline', ['province_code', 'state', 'due_at'], unique=False)
        batch_op.create_index('ix_applications_decided', ['province_code', 'state', 'decided_at', 'submitted_at'],
                              unique=False)
        batch_op.create_index('ix_applications_submitted', ['province_code', 'submitted_at'], unique=False)
    _backfill()
    op.create_table(
        'deadline_reminders',
        sa.Column('id', BigId, autoincrement=True, nullable=False),
        sa.Column('province_code', sa.String(length=6), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('applications', sa.Integer(), nullable=False),
        sa.Column('recipients', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['province_code'], ['provinces.code'],
                                name=op.f('fk_deadline_reminders_province_code_provinces')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_deadline_reminders')),
        sa.UniqueConstraint('province_code', 'day', name='uq_deadline_reminders_day'),
    )


def downgrade():
    op.drop_table('deadline_reminders')
    with op.batch_alter_table('applications', schema=None) as batch_op:
        batch_op.drop_index('ix_applications_submitted')
        batch_op.drop_index('ix_applications_decided')
        batch_op.drop_index('ix_applications_deadline')
        batch_op.drop_column('due_at')
        batch_op.drop_column('bureau_since')
