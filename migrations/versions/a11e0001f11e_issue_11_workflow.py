"""issue 11 workflow: the application's creator, ended states (rejected, withdrawn), access authorisations

Revision ID: a11e0001f11e
Revises: dce45dccead7
Create Date: 2026-11-29 12:50:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a11e0001f11e'
down_revision = 'dce45dccead7'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
OLD_STATES = "state IN ('draft', 'isp_review', 'bureau_review', 'approved')"
NEW_STATES = "state IN ('draft', 'isp_review', 'bureau_review', 'approved', 'rejected', 'withdrawn')"
OLD_OPEN = "state != 'approved'"
NEW_OPEN = "state NOT IN ('approved', 'rejected', 'withdrawn')"


def _open_index(where: str) -> None:
    op.create_index('uq_applications_open_per_entity', 'applications', ['entity_id'], unique=True,
                    sqlite_where=sa.text(where), postgresql_where=sa.text(where))


def upgrade():
    op.create_table('access_authorisations',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('entity_id', BigId, nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('requested_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('used_at', sa.DateTime(), nullable=True),
    sa.Column('used_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['entity_id'], ['entities.id'], name=op.f('fk_access_authorisations_entity_id_entities')),
    sa.ForeignKeyConstraint(['requested_by_id'], ['users.id'], name=op.f('fk_access_authorisations_requested_by_id_users')),
    sa.ForeignKeyConstraint(['used_by_id'], ['users.id'], name=op.f('fk_access_authorisations_used_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_access_authorisations'))
    )
    op.create_index('ix_access_authorisations_entity', 'access_authorisations', ['entity_id', 'created_at'])
    op.create_index('ix_access_authorisations_requested_by', 'access_authorisations', ['requested_by_id', 'created_at'])

    op.drop_index('uq_applications_open_per_entity', table_name='applications')
    with op.batch_alter_table('applications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('created_by_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_applications_created_by_id_users'), 'users', ['created_by_id'], ['id'])
        batch_op.drop_constraint(op.f('ck_applications_application_state'), type_='check')
        batch_op.create_check_constraint('application_state', sa.text(NEW_STATES))
        batch_op.create_index('ix_applications_created_by', ['created_by_id', 'id'], unique=False)
        batch_op.create_index('ix_applications_submitted_by', ['submitted_by_id', 'id'], unique=False)

    # who created each application: its submitter, else the entity's owner
    op.execute("UPDATE applications SET created_by_id = submitted_by_id WHERE submitted_by_id IS NOT NULL")
    op.execute("UPDATE applications SET created_by_id = (SELECT owner_id FROM entities "
               "WHERE entities.id = applications.entity_id) WHERE created_by_id IS NULL")
    # a later application the bureau sent back used to stay open as a draft: it is now ended (rejected),
    # and the draft website of a rejected new-website application frees its domains
    drafts = ("SELECT CAST(json_extract(proposal, '$.website_id') AS INTEGER)" if op.get_bind().dialect.name == 'sqlite'
              else "SELECT CAST(proposal::json->>'website_id' AS BIGINT)")
    orphan = (f"{drafts} FROM applications WHERE state = 'draft' AND kind = 'new_website'")
    for table in ('domains', 'accesses', 'preapproval_items'):
        op.execute(f"DELETE FROM {table} WHERE website_id IN ({orphan})")
    op.execute(f"DELETE FROM websites WHERE status = 'draft' AND id IN ({orphan})")
    op.execute("UPDATE applications SET state = 'rejected' WHERE state = 'draft' AND kind != 'new_filing'")
    _open_index(NEW_OPEN)


def downgrade():
    op.drop_index('uq_applications_open_per_entity', table_name='applications')
    op.execute("UPDATE applications SET state = 'draft' WHERE state IN ('rejected', 'withdrawn')")
    with op.batch_alter_table('applications', schema=None) as batch_op:
        batch_op.drop_index('ix_applications_submitted_by')
        batch_op.drop_index('ix_applications_created_by')
        batch_op.drop_constraint(op.f('ck_applications_application_state'), type_='check')
        batch_op.create_check_constraint('application_state', sa.text(OLD_STATES))
        batch_op.drop_constraint(batch_op.f('fk_applications_created_by_id_users'), type_='foreignkey')
        batch_op.drop_column('created_by_id')
    _open_index(OLD_OPEN)
    op.drop_index('ix_access_authorisations_requested_by', table_name='access_authorisations')
    op.drop_index('ix_access_authorisations_entity', table_name='access_authorisations')
    op.drop_table('access_authorisations')
