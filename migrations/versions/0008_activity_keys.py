"""activities: an idempotency key per community, so a retried create answers the first

Revision ID: 0008_activity_keys
Revises: 0007_attendance_present
Create Date: 2026-12-01 22:05:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0008_activity_keys'
down_revision = '0007_attendance_present'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('activities', schema=None) as batch_op:
        batch_op.add_column(sa.Column('idempotency_key', sa.String(length=120), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f('uq_activities_community_id_idempotency_key'),
            ['community_id', 'idempotency_key'])


def downgrade():
    with op.batch_alter_table('activities', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_activities_community_id_idempotency_key'),
                                 type_='unique')
        batch_op.drop_column('idempotency_key')
