"""adjustments: staff grants and deductions, a credit over the approval limit waiting for a
second staff member

Revision ID: 0012_adjustments
Revises: 0011_tasks
Create Date: 2026-12-07 04:50:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0012_adjustments'
down_revision = '0011_tasks'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('adjustments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('community_id', sa.Integer(), nullable=False),
    sa.Column('volunteer_id', sa.Integer(), nullable=False),
    sa.Column('points', sa.BigInteger(), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=False),
    sa.Column('idempotency_key', sa.String(length=160), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('approved_by', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('decided_at', sa.DateTime(), nullable=True),
    sa.Column('transaction_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'posted', 'rejected')", name=op.f('ck_adjustments_status_known')),
    sa.CheckConstraint('approved_by IS NULL OR approved_by <> created_by', name=op.f('ck_adjustments_checker_is_not_maker')),
    sa.ForeignKeyConstraint(['approved_by'], ['users.id'], name=op.f('fk_adjustments_approved_by_users')),
    sa.ForeignKeyConstraint(['community_id'], ['communities.id'], name=op.f('fk_adjustments_community_id_communities')),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_adjustments_created_by_users')),
    sa.ForeignKeyConstraint(['transaction_id'], ['ledger_transactions.id'], name=op.f('fk_adjustments_transaction_id_ledger_transactions')),
    sa.ForeignKeyConstraint(['volunteer_id'], ['volunteers.id'], name=op.f('fk_adjustments_volunteer_id_volunteers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_adjustments')),
    sa.UniqueConstraint('community_id', 'idempotency_key', name=op.f('uq_adjustments_community_id_idempotency_key'))
    )
    with op.batch_alter_table('adjustments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_adjustments_community_id'), ['community_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_adjustments_volunteer_id'), ['volunteer_id'], unique=False)


def downgrade():
    with op.batch_alter_table('adjustments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_adjustments_volunteer_id'))
        batch_op.drop_index(batch_op.f('ix_adjustments_community_id'))
    op.drop_table('adjustments')
