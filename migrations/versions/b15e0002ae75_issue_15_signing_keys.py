"""issue 15 signing keys: the certificate signing keys every node reads (SIGNING_KEY_STORE = database),
private keys sealed with AES-256-GCM under SIGNING_KEY_KEK

Revision ID: b15e0002ae75
Revises: b15e0001a0d1
Create Date: 2026-11-29 19:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b15e0002ae75'
down_revision = 'b15e0001a0d1'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'signing_keys',
        sa.Column('kid', sa.String(length=64), nullable=False),
        sa.Column('public_key', sa.LargeBinary(length=32), nullable=False),
        sa.Column('private_key_sealed', sa.LargeBinary(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('retired_at', sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint('kid', name=op.f('pk_signing_keys')),
    )


def downgrade():
    op.drop_table('signing_keys')
