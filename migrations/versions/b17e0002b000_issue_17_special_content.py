"""issue 17 专项内容: the special filings of websites declaring special content (special_content_items), their
history (special_content_events), and the forbidden words of website names (forbidden_words). The websites of
applications already open that declare 电子公告 or 23 论坛/社区 (SPECIAL_CONTENT_SERVICE_CODES' default) get a
pending item, so that their approval waits for the content department as a new submission's does.

Revision ID: b17e0002b000
Revises: b17e0001a000
Create Date: 2026-11-30 02:20:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'b17e0002b000'
down_revision = 'b17e0001a000'
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')

#: the open applications' websites that declare special content (new filings: all their websites)
BACKFILL = """
INSERT INTO special_content_items (website_id, entity_id, province_code, bbs, bbs_sections, service_content, state,
                                   reason, opened_at)
SELECT w.id, w.entity_id, a.province_code, w.bbs, CASE WHEN w.bbs THEN w.bbs_sections ELSE '' END,
       CASE WHEN w.service_content = '23' THEN w.service_content ELSE '' END, 'pending', '', CURRENT_TIMESTAMP
FROM websites w JOIN applications a ON a.entity_id = w.entity_id
WHERE a.kind = 'new_filing' AND a.state IN ('isp_review', 'bureau_review') AND a.import_job_id IS NULL
  AND (w.bbs OR w.service_content = '23')
"""


def upgrade():
    op.create_table(
        'special_content_items',
        sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
        sa.Column('import_job_id', sa.Integer(), nullable=True),
        sa.Column('website_id', BIG_ID, nullable=False),
        sa.Column('entity_id', BIG_ID, nullable=False),
        sa.Column('province_code', sa.String(length=6), nullable=False),
        sa.Column('bbs', sa.Boolean(), nullable=False),
        sa.Column('bbs_sections', sa.String(length=255), nullable=False),
        sa.Column('service_content', sa.String(length=16), nullable=False),
        sa.Column('state', sa.Enum('pending', 'confirmed', 'refused', name='special_state', native_enum=False,
                                   create_constraint=True, length=32), nullable=False),
        sa.Column('reason', sa.String(length=500), nullable=False),
        sa.Column('reviewer_id', sa.Integer(), nullable=True),
        sa.Column('reviewed_at', sa.DateTime(), nullable=True),
        sa.Column('opened_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['website_id'], ['websites.id'], ondelete='CASCADE',
                                name=op.f('fk_special_content_items_website_id_websites')),
        sa.ForeignKeyConstraint(['entity_id'], ['entities.id'], ondelete='CASCADE',
                                name=op.f('fk_special_content_items_entity_id_entities')),
        sa.ForeignKeyConstraint(['province_code'], ['provinces.code'],
                                name=op.f('fk_special_content_items_province_code_provinces')),
        sa.ForeignKeyConstraint(['reviewer_id'], ['users.id'], name=op.f('fk_special_content_items_reviewer_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_special_content_items')),
        sa.UniqueConstraint('website_id', name=op.f('uq_special_content_items_website_id')),
    )
    op.create_index('ix_special_content_items_queue', 'special_content_items', ['province_code', 'state', 'id'])
    op.create_index('ix_special_content_items_state', 'special_content_items', ['state', 'id'])
    op.create_index('ix_special_content_items_entity_id', 'special_content_items', ['entity_id'])
    op.create_table(
        'special_content_events',
        sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
        sa.Column('import_job_id', sa.Integer(), nullable=True),
        sa.Column('entity_id', BIG_ID, nullable=False),
        sa.Column('website_id', BIG_ID, nullable=False),
        sa.Column('website_name', sa.String(length=128), nullable=False),
        sa.Column('action', sa.String(length=16), nullable=False),
        sa.Column('declaration', sa.String(length=500), nullable=False),
        sa.Column('reason', sa.String(length=500), nullable=False),
        sa.Column('actor_id', sa.Integer(), nullable=True),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['entity_id'], ['entities.id'], ondelete='CASCADE',
                                name=op.f('fk_special_content_events_entity_id_entities')),
        sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('fk_special_content_events_actor_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_special_content_events')),
    )
    op.create_index('ix_special_content_events_entity', 'special_content_events', ['entity_id', 'id'])
    op.create_table(
        'forbidden_words',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('word', sa.String(length=64), nullable=False),
        sa.Column('reason', sa.String(length=500), nullable=False),
        sa.Column('province_code', sa.String(length=6), nullable=True),
        sa.Column('created_by_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['province_code'], ['provinces.code'],
                                name=op.f('fk_forbidden_words_province_code_provinces')),
        sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_forbidden_words_created_by_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_forbidden_words')),
        sa.UniqueConstraint('word', name='uq_forbidden_words_word'),
    )
    op.execute(BACKFILL)


def downgrade():
    op.drop_table('forbidden_words')
    op.drop_index('ix_special_content_events_entity', table_name='special_content_events')
    op.drop_table('special_content_events')
    op.drop_index('ix_special_content_items_entity_id', table_name='special_content_items')
    op.drop_index('ix_special_content_items_state', table_name='special_content_items')
    op.drop_index('ix_special_content_items_queue', table_name='special_content_items')
    op.drop_table('special_content_items')
