"""issue 11 accounts: sign-in locks per account and address, reset links bound to the password

Revision ID: a11e0003f11e
Revises: a11e0002f11e
Create Date: 2026-11-29 12:50:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a11e0003f11e'
down_revision = 'a11e0002f11e'
branch_labels = None
depends_on = None


def upgrade():
    # existing links get an empty fingerprint, which matches no password: they stop working
    with op.batch_alter_table('password_reset_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('password_fingerprint', sa.String(length=64), server_default='',
                                      nullable=False))


def downgrade():
    with op.batch_alter_table('password_reset_tokens', schema=None) as batch_op:
        batch_op.drop_column('password_fingerprint')
