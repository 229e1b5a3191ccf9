"""issue 15 scale: the public record of each filing in force (public_records), the lookup's answer stored as the
JSON it sends, the domains it is found by (public_names), and the rebuild mark set when a code's name changes (public_record_rebuild); the records of the
filings already in force are written here.

Revision ID: b15e0009c0de
Revises: b18e0001a000
Create Date: 2026-11-30 16:00:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'b15e0009c0de'
down_revision = 'b18e0001a000'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('public_records',
    sa.Column('entity_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('unit_name', sa.String(length=128), nullable=False),
    sa.Column('record', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['entity_id'], ['entities.id'], name=op.f('fk_public_records_entity_id_entities'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('entity_id', name=op.f('pk_public_records'))
    )
    op.create_table('public_names',
    sa.Column('name', sa.String(length=253), nullable=False),
    sa.Column('entity_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['entity_id'], ['public_records.entity_id'],
                            name=op.f('fk_public_names_entity_id_public_records'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_public_names'))
    )
    op.create_index(op.f('ix_public_names_entity_id'), 'public_names', ['entity_id'], unique=False)
    op.create_table('public_record_rebuild',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('next_entity_id', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_public_record_rebuild'))
    )
    # the records of the filings in force, written by the code that keeps them (a later change of what a record
    # holds marks a rebuild instead: public_records.mark_rebuild)
    import public_records
    public_records.rebuild(op.get_bind())


def downgrade():
    op.drop_table('public_record_rebuild')
    op.drop_index(op.f('ix_public_names_entity_id'), table_name='public_names')
    op.drop_table('public_names')
    op.drop_table('public_records')
