"""issue 15 scale: a pre-approval item names its filing and the filing's province (preapproval_items.entity_id and
province_code, copied from its website's entity), so that the bureau queue's filter "pre-approval category" reads
the province's filings of the category from one index (天津 at 5,000,000 filings: 4,706 entries) instead of probing
websites then items for every queued application (25,666 applications: 318–409 ms).

The columns are added nullable, filled from the websites and entities BATCH items at a time (short statements on a
large table), then made NOT NULL. On PostgreSQL the index may have been built beforehand with CREATE INDEX
CONCURRENTLY under this name: `if_not_exists` then skips it.

Revision ID: b15e0007e1a7
Revises: b15e0006c0a5
Create Date: 2026-11-29 23:30:00

"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = 'b15e0007e1a7'
down_revision = 'b15e0006c0a5'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
BATCH = 50_000
INDEX = 'ix_preapproval_items_category_province_entity'
INDEX_COLUMNS = ['category', 'province_code', 'entity_id', 'import_job_id']
#: the foreign key's own index: without it every deleted entity (a staged import removed) scanned the whole table
ENTITY_INDEX = 'ix_preapproval_items_entity_id'
#: (column, its type, its foreign key, the table and column it refers to, ON DELETE)
COLUMNS = (('entity_id', BigId, 'fk_preapproval_items_entity_id_entities', 'entities', 'id', 'CASCADE'),
           ('province_code', sa.String(length=6), 'fk_preapproval_items_province_code_provinces', 'provinces', 'code',
            None))


def _fill():
    """Each item's entity and province from its website's entity, one range of item ids per statement."""
    bind = op.get_bind()
    last = bind.execute(sa.text("SELECT max(id) FROM preapproval_items")).scalar() or 0
    for start in range(0, last, BATCH):
        bind.execute(sa.text(
            "UPDATE preapproval_items SET entity_id = websites.entity_id, province_code = entities.province_code "
            "FROM websites JOIN entities ON entities.id = websites.entity_id "
            "WHERE websites.id = preapproval_items.website_id AND preapproval_items.id > :start "
            "AND preapproval_items.id <= :end"), {"start": start, "end": start + BATCH})


def upgrade():
    with op.batch_alter_table('preapproval_items', schema=None) as batch_op:
        for name, type_, *_reference in COLUMNS:
            batch_op.add_column(sa.Column(name, type_, nullable=True))
    _fill()
    with op.batch_alter_table('preapproval_items', schema=None) as batch_op:
        for name, type_, foreign_key, table, column, ondelete in COLUMNS:
            batch_op.alter_column(name, existing_type=type_, nullable=False)
            batch_op.create_foreign_key(foreign_key, table, [name], [column], ondelete=ondelete)
    op.create_index(INDEX, 'preapproval_items', INDEX_COLUMNS, unique=False, if_not_exists=True)
    op.create_index(ENTITY_INDEX, 'preapproval_items', ['entity_id'], unique=False, if_not_exists=True)


def downgrade():
    op.drop_index(ENTITY_INDEX, table_name='preapproval_items', if_exists=True)
    op.drop_index(INDEX, table_name='preapproval_items', if_exists=True)
    with op.batch_alter_table('preapproval_items', schema=None) as batch_op:
        for name, _type, foreign_key, *_reference in COLUMNS:
            batch_op.drop_constraint(foreign_key, type_='foreignkey')
            batch_op.drop_column(name)
