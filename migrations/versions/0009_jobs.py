"""background jobs: the job rows pages read, and procrastinate's queue schema

Revision ID: 0009_jobs
Revises: 0008_activity_keys
Create Date: 2026-12-07 05:10:00

The queue is procrastinate's (PyPI), written against procrastinate 3.10: its own SQL
schema (tables procrastinate_*, their functions, triggers and types) is applied from the
installed package, on PostgreSQL only. A later procrastinate that changes its schema ships
SQL migrations (procrastinate/sql/migrations): apply the ones after 3.10 in a new Alembic
migration before deploying it.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0009_jobs'
down_revision = '0008_activity_keys'
branch_labels = None
depends_on = None

QUEUE_TABLES = ('procrastinate_events', 'procrastinate_periodic_defers', 'procrastinate_jobs',
                'procrastinate_workers')
QUEUE_TYPES = ('procrastinate_job_to_defer_v1', 'procrastinate_job_event_type',
               'procrastinate_job_status')
UNFINISHED = "status IN ('queued', 'running')"


def upgrade():
    op.create_table('background_jobs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('twin_key', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('done', sa.BigInteger(), nullable=False),
    sa.Column('total', sa.BigInteger(), nullable=True),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('upload', sa.LargeBinary(), nullable=True),
    sa.Column('result', sa.JSON(), nullable=True),
    sa.Column('filename', sa.String(length=200), nullable=False),
    sa.Column('content_type', sa.String(length=100), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=True),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=True),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.Column('expires_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("kind IN ('export', 'import', 'monthly_pdf')",
                       name=op.f('ck_background_jobs_kind_known')),
    sa.CheckConstraint("status IN ('queued', 'running', 'done', 'failed')",
                       name=op.f('ck_background_jobs_status_known')),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'],
                            name=op.f('fk_background_jobs_owner_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_background_jobs'))
    )
    with op.batch_alter_table('background_jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_background_jobs_owner_id'), ['owner_id'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_background_jobs_expires_at'), ['expires_at'],
                              unique=False)
        batch_op.create_index('ix_background_jobs_unfinished_twin', ['owner_id', 'twin_key'],
                              unique=True, postgresql_where=sa.text(UNFINISHED))

    from procrastinate.schema import SchemaManager

    # The schema is a script of many statements with no parameters: run it as is, on this
    # migration's connection and transaction.
    op.get_bind().connection.driver_connection.execute(SchemaManager.get_schema())


def downgrade():
    # The queue's own schema first.
    for table in QUEUE_TABLES:
        op.execute(f'DROP TABLE IF EXISTS {table} CASCADE')
    op.execute("""
        DO $$
        DECLARE f regprocedure;
        BEGIN
          FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
                   JOIN pg_namespace n ON n.oid = p.pronamespace
                   WHERE n.nspname = current_schema() AND p.proname LIKE 'procrastinate%'
          LOOP
            EXECUTE 'DROP FUNCTION ' || f || ' CASCADE';
          END LOOP;
        END $$""")
    for type_ in QUEUE_TYPES:
        op.execute(f'DROP TYPE IF EXISTS {type_} CASCADE')
    with op.batch_alter_table('background_jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_background_jobs_unfinished_twin')
        batch_op.drop_index(batch_op.f('ix_background_jobs_expires_at'))
        batch_op.drop_index(batch_op.f('ix_background_jobs_owner_id'))
    op.drop_table('background_jobs')
