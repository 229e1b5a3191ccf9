"""issue 16 data-exchange API: credentials (api_credentials), the stored answers of write calls by sequence number
(exchange_calls), the event feed (exchange_events, sequenced in commit order by the single row exchange_feed_head).

Revision ID: b16e0001a000
Revises: b15e0008d5b0
Create Date: 2026-11-30 02:00:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'b16e0001a000'
down_revision = 'b15e0008d5b0'
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade():
    op.create_table(
        'api_credentials',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('key_id', sa.String(length=32), nullable=False),
        sa.Column('secret_hash', sa.String(length=64), nullable=False),
        sa.Column('scopes', sa.String(length=64), nullable=False),
        sa.Column('allowed_networks', sa.Text(), nullable=False),
        sa.Column('expires_at', sa.DateTime(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('revoked_at', sa.DateTime(), nullable=True),
        sa.Column('last_used_at', sa.DateTime(), nullable=True),
        sa.Column('last_used_ip', sa.String(length=45), nullable=False),
        sa.Column('next_sequence', sa.BigInteger(), nullable=False),
        sa.Column('acked_event_id', sa.BigInteger(), nullable=False),
        sa.Column('webhook_url', sa.String(length=2048), nullable=True),
        sa.Column('webhook_secret', sa.String(length=64), nullable=True),
        sa.Column('webhook_delivered_id', sa.BigInteger(), nullable=False),
        sa.Column('webhook_attempts', sa.Integer(), nullable=False),
        sa.Column('webhook_next_at', sa.DateTime(), nullable=True),
        sa.Column('webhook_last_error', sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_api_credentials_user_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_api_credentials')),
        sa.UniqueConstraint('key_id', name=op.f('uq_api_credentials_key_id')),
    )
    op.create_index(op.f('ix_api_credentials_user_id'), 'api_credentials', ['user_id'])
    op.create_table(
        'exchange_calls',
        sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
        sa.Column('credential_id', sa.Integer(), nullable=False),
        sa.Column('sequence', sa.BigInteger(), nullable=False),
        sa.Column('operation', sa.String(length=64), nullable=False),
        sa.Column('request_digest', sa.String(length=64), nullable=False),
        sa.Column('status', sa.Integer(), nullable=False),
        sa.Column('response', sa.Text(), nullable=False),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['credential_id'], ['api_credentials.id'],
                                name=op.f('fk_exchange_calls_credential_id_api_credentials')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_exchange_calls')),
        sa.UniqueConstraint('credential_id', 'sequence', name=op.f('uq_exchange_calls_credential_id')),
    )
    op.create_table(
        'exchange_events',
        sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
        sa.Column('seq', sa.BigInteger(), nullable=True),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=48), nullable=False),
        sa.Column('object_type', sa.String(length=32), nullable=False),
        sa.Column('object_id', sa.String(length=64), nullable=False),
        sa.Column('payload', sa.Text(), nullable=False),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_exchange_events')),
        sa.UniqueConstraint('seq', name=op.f('uq_exchange_events_seq')),
    )
    op.create_index('ix_exchange_events_user_seq', 'exchange_events', ['user_id', 'seq'])
    op.create_index('ix_exchange_events_pending', 'exchange_events', ['id'],
                    postgresql_where=sa.text('seq IS NULL'), sqlite_where=sa.text('seq IS NULL'))
    op.create_table(
        'exchange_feed_head',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('last_seq', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_exchange_feed_head')),
    )


def downgrade():
    op.drop_table('exchange_feed_head')
    op.drop_index('ix_exchange_events_pending', table_name='exchange_events')
    op.drop_index('ix_exchange_events_user_seq', table_name='exchange_events')
    op.drop_table('exchange_events')
    op.drop_table('exchange_calls')
    op.drop_index(op.f('ix_api_credentials_user_id'), table_name='api_credentials')
    op.drop_table('api_credentials')
