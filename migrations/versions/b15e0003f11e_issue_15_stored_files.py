"""issue 15 shared storage: files in the database (stored_files + stored_file_chunks), for FILE_STORAGE=database

Revision ID: b15e0003f11e
Revises: b15e0002ae75
Create Date: 2026-11-29 18:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b15e0003f11e'
down_revision = 'b15e0002ae75'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade():
    op.create_table(
        'stored_files',
        sa.Column('id', BigId, nullable=False),
        sa.Column('key', sa.String(length=255), nullable=False),
        sa.Column('size', sa.BigInteger(), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_stored_files')),
        sa.UniqueConstraint('key', name=op.f('uq_stored_files_key')),
    )
    with op.batch_alter_table('stored_files', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_stored_files_created_at'), ['created_at'], unique=False)
    op.create_table(
        'stored_file_chunks',
        sa.Column('file_id', BigId, nullable=False),
        sa.Column('seq', sa.Integer(), nullable=False),
        sa.Column('data', sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(['file_id'], ['stored_files.id'],
                                name=op.f('fk_stored_file_chunks_file_id_stored_files'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('file_id', 'seq', name=op.f('pk_stored_file_chunks')),
    )


def downgrade():
    op.drop_table('stored_file_chunks')
    with op.batch_alter_table('stored_files', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_stored_files_created_at'))
    op.drop_table('stored_files')
