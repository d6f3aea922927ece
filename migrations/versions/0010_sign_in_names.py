"""sign-in names in one namespace across communities; attempts counted before they are checked

Revision ID: 0010_sign_in_names
Revises: 0009_jobs
Create Date: 2026-12-07 05:10:00

`sign_in_names` holds every username and phone number anyone signs in with; its primary
key lets each name reach one account only, across every community.

Existing collisions (a username that is another user's phone number: the same name reached
two people) are resolved so: **the username yields to the phone number**, whichever account
is older, because a phone number is its owner's and is what they type, while a username
was made up by staff. The username becomes `<username>-<user id>` (with a further `-n` in
the unlikely case that is taken too). Each rename is printed by the upgrade and written to
the audit log as `user.rename` (detail: before, after, and the user whose phone it is), so
admins find them under 审计日志 / Audit log, action `user.rename`, and tell the people
concerned. The downgrade keeps the new usernames.

`throttle_events` (one row per failure, counted after the check) gives way to
`attempt_counters` (one row per key, counted before the check); counts in progress start
afresh.
"""
from datetime import UTC, datetime

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0010_sign_in_names'
down_revision = '0009_jobs'
branch_labels = None
depends_on = None

users = sa.table('users', sa.column('id', sa.Integer), sa.column('username', sa.String),
                 sa.column('phone', sa.String), sa.column('community_id', sa.Integer))
names = sa.table('sign_in_names', sa.column('name', sa.String),
                 sa.column('user_id', sa.Integer), sa.column('kind', sa.String))
audit_log = sa.table('audit_log', sa.column('at', sa.DateTime),
                     sa.column('actor_name', sa.String), sa.column('community_id', sa.Integer),
                     sa.column('action', sa.String), sa.column('target', sa.String),
                     sa.column('detail', sa.JSON), sa.column('address', sa.String))


def upgrade():
    op.create_table('sign_in_names',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.CheckConstraint("kind IN ('username', 'phone')", name=op.f('ck_sign_in_names_kind_known')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_sign_in_names_user_id_users')),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_sign_in_names'))
    )
    with op.batch_alter_table('sign_in_names', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sign_in_names_user_id'), ['user_id'], unique=False)

    op.create_table('attempt_counters',
    sa.Column('scope', sa.String(length=20), nullable=False),
    sa.Column('key', sa.String(length=120), nullable=False),
    sa.Column('window_start', sa.DateTime(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('scope', 'key', name=op.f('pk_attempt_counters'))
    )
    with op.batch_alter_table('throttle_events', schema=None) as batch_op:
        batch_op.drop_index('ix_throttle_events_lookup')
    op.drop_table('throttle_events')

    _claim_existing_names(op.get_bind())


def _claim_existing_names(connection):
    rows = connection.execute(sa.select(users.c.id, users.c.username, users.c.phone,
                                        users.c.community_id).order_by(users.c.id)).all()
    phone_of = {row.phone: row.id for row in rows if row.phone}
    taken = set(phone_of) | {row.username for row in rows}
    claims, renames = [], []
    for row in rows:
        username = row.username
        owner = phone_of.get(username)
        if owner is not None and owner != row.id:
            username, n = f"{row.username}-{row.id}", 1
            while username in taken:
                n += 1
                username = f"{row.username}-{row.id}-{n}"
            taken.add(username)
            renames.append((row, username, owner))
        if row.phone:
            claims.append({"name": row.phone, "user_id": row.id, "kind": "phone"})
        if username != row.phone:
            claims.append({"name": username, "user_id": row.id, "kind": "username"})
    for row, username, owner in renames:
        connection.execute(users.update().where(users.c.id == row.id)
                           .values(username=username))
        connection.execute(audit_log.insert().values(
            at=datetime.now(UTC).replace(tzinfo=None), actor_name="", community_id=row.community_id, action="user.rename",
            target=f"user:{row.id}", address="migration",
            detail={"before": row.username, "after": username,
                    "reason": f"the phone number of user:{owner}"}))
        print(f"0010_sign_in_names: user {row.id}: username {row.username!r} is the phone "
              f"number of user {owner}; renamed to {username!r}")
    if claims:
        connection.execute(names.insert(), claims)


def downgrade():
    op.create_table('throttle_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('scope', sa.String(length=20), nullable=False),
    sa.Column('key', sa.String(length=120), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_throttle_events'))
    )
    with op.batch_alter_table('throttle_events', schema=None) as batch_op:
        batch_op.create_index('ix_throttle_events_lookup', ['scope', 'key', 'at'], unique=False)
    op.drop_table('attempt_counters')
    with op.batch_alter_table('sign_in_names', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sign_in_names_user_id'))
    op.drop_table('sign_in_names')
