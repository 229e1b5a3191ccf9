"""issue 15 audit log: events written unchained (content_hash), chained later by the sequencer (seq, hash),
signed tree heads (audit_tree_heads); the existing chain checked under the old formula and re-chained under
the new one, in batches

Revision ID: b15e0001a0d1
Revises: b14e0001d0a1
Create Date: 2026-11-29 18:50:00

"""
import hashlib
import json

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'b15e0001a0d1'
down_revision = 'b14e0001d0a1'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
GENESIS_HASH = "0" * 64
BATCH = 5000
CONTENT = ('at', 'actor_id', 'actor_username', 'actor_role', 'province_code', 'action', 'object_type', 'object_id',
           'changes', 'ip')
#: read through SQLAlchemy's types, so that `at` is a datetime on SQLite too
EVENTS = sa.table('audit_events', sa.column('id', BigId), sa.column('at', sa.DateTime()),
                  *(sa.column(name) for name in CONTENT[1:]), sa.column('seq', BigId),
                  sa.column('prev_hash'), sa.column('hash'), sa.column('content_hash'))


# The hash formulas as of this revision (copies of audit.py's: a migration must not change meaning when the
# application's code does).
def _sha256(data):
    return hashlib.sha256(json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"),
                                     default=str).encode()).hexdigest()


def _content(row):
    return [row.at.isoformat(timespec="microseconds"), *(getattr(row, name) for name in CONTENT[1:])]


def _old_hash(prev_hash, row):
    return _sha256([prev_hash, *_content(row)])


def _rows():
    """Every event in id order, BATCH at a time."""
    bind, last = op.get_bind(), 0
    while True:
        rows = bind.execute(sa.select(EVENTS).where(EVENTS.c.id > last).order_by(EVENTS.c.id).limit(BATCH)).all()
        if not rows:
            return
        yield rows
        last = rows[-1].id


def _rechain():
    """Check the chain as the old release wrote it (refuse to re-chain a broken log), then give every event
    its place (its id order), its content hash and its hash under the new formula."""
    bind = op.get_bind()
    old_prev, new_prev, seq = GENESIS_HASH, GENESIS_HASH, 0
    for rows in _rows():
        updates = []
        for row in rows:
            if row.prev_hash != old_prev or _old_hash(old_prev, row) != row.hash:
                raise RuntimeError(f"audit event {row.id} does not match the old chain: run `flask audit verify` "
                                   "on the previous release; a broken log is not re-chained")
            seq += 1
            content = _sha256(_content(row))
            link = hashlib.sha256(f"{new_prev}|{seq}|{content}".encode("ascii")).hexdigest()
            updates.append({"row_id": row.id, "seq": seq, "content_hash": content, "prev_hash": new_prev,
                            "hash": link})
            old_prev, new_prev = row.hash, link
        bind.execute(sa.text("UPDATE audit_events SET seq = :seq, content_hash = :content_hash, "
                             "prev_hash = :prev_hash, hash = :hash WHERE id = :row_id"), updates)
    head = bind.execute(sa.text("SELECT last_hash FROM audit_head WHERE id = 1")).scalar()
    if (head or GENESIS_HASH) != old_prev:
        raise RuntimeError("the newest audit events were removed (the old chain head does not match): run "
                           "`flask audit verify` on the previous release; a broken log is not re-chained")
    bind.execute(sa.text("DELETE FROM audit_head"))
    bind.execute(sa.text("INSERT INTO audit_head (id, last_seq, last_hash) VALUES (1, :seq, :hash)"),
                 {"seq": seq, "hash": new_prev})


def upgrade():
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('content_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('seq', BigId, nullable=True))
        batch_op.alter_column('prev_hash', existing_type=sa.String(length=64), nullable=True)
        batch_op.alter_column('hash', existing_type=sa.String(length=64), nullable=True)
        batch_op.drop_constraint(op.f('uq_audit_events_hash'), type_='unique')
    with op.batch_alter_table('audit_head', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_seq', BigId, nullable=False, server_default='0'))
        batch_op.drop_column('last_event_id')
    _rechain()
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.alter_column('content_hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint(op.f('uq_audit_events_seq'), ['seq'])
    op.create_index('ix_audit_events_pending', 'audit_events', ['id'], unique=False,
                    postgresql_where=sa.text('seq IS NULL'), sqlite_where=sa.text('seq IS NULL'))
    op.create_table('audit_tree_heads',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('tree_size', BigId, nullable=False),
    sa.Column('head_hash', sa.String(length=64), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('kid', sa.String(length=64), nullable=False),
    sa.Column('signature', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_tree_heads')),
    sa.UniqueConstraint('tree_size', name=op.f('uq_audit_tree_heads_tree_size'))
    )


def _old_chain():
    """Every event chained in id order under the old formula (events the sequencer had not reached included)."""
    bind = op.get_bind()
    prev, last_id = GENESIS_HASH, None
    for rows in _rows():
        updates = []
        for row in rows:
            link = _old_hash(prev, row)
            updates.append({"row_id": row.id, "prev_hash": prev, "hash": link})
            prev, last_id = link, row.id
        bind.execute(sa.text("UPDATE audit_events SET prev_hash = :prev_hash, hash = :hash WHERE id = :row_id"),
                     updates)
    bind.execute(sa.text("DELETE FROM audit_head"))
    bind.execute(sa.text("INSERT INTO audit_head (id, last_hash, last_event_id) VALUES (1, :hash, :last_id)"),
                 {"hash": prev, "last_id": last_id})


def downgrade():
    op.drop_table('audit_tree_heads')
    op.drop_index('ix_audit_events_pending', table_name='audit_events', postgresql_where=sa.text('seq IS NULL'),
                  sqlite_where=sa.text('seq IS NULL'))
    with op.batch_alter_table('audit_head', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_event_id', BigId, nullable=True))
        batch_op.drop_column('last_seq')
    _old_chain()
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('uq_audit_events_seq'), type_='unique')
        batch_op.drop_column('seq')
        batch_op.drop_column('content_hash')
        batch_op.alter_column('prev_hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column('hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint(op.f('uq_audit_events_hash'), ['hash'])
