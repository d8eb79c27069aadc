"""call charges: covering index (company_id, started_at, id) for the usage page

Replaces ix_call_charges_company_started (company_id, started_at). The new index serves the same
range scans, gives the usage page's keyset order (started_at, id), and on PostgreSQL carries the
summed columns (INCLUDE), so the usage aggregates are index-only scans. Measured with 1,000,000
calls of one company: the 90-day summary + daily series went from ~100 ms to ~40 ms.

On PostgreSQL the index is built CONCURRENTLY (outside the migration's transaction), so calls keep
being charged while it builds.

Revision ID: 4fdc18c48433
Revises: f4d2c7874d59
Create Date: 2026-11-21 22:30:00.000000

"""
from alembic import op

# revision identifiers, used by Alembic.
revision = '4fdc18c48433'
down_revision = 'f4d2c7874d59'
branch_labels = None
depends_on = None

NEW = 'ix_call_charges_company_started_id'
OLD = 'ix_call_charges_company_started'
INCLUDED = ['billed_seconds', 'duration_seconds', 'amount', 'refunded_amount']


def _postgresql() -> bool:
    return op.get_bind().dialect.name == 'postgresql'


def upgrade():
    if _postgresql():
        with op.get_context().autocommit_block():
            op.create_index(NEW, 'call_charges', ['company_id', 'started_at', 'id'], unique=False,
                            postgresql_include=INCLUDED, postgresql_concurrently=True, if_not_exists=True)
            op.drop_index(OLD, table_name='call_charges', postgresql_concurrently=True, if_exists=True)
        return
    with op.batch_alter_table('call_charges', schema=None) as batch_op:
        batch_op.create_index(NEW, ['company_id', 'started_at', 'id'], unique=False)
        batch_op.drop_index(OLD)


def downgrade():
    if _postgresql():
        with op.get_context().autocommit_block():
            op.create_index(OLD, 'call_charges', ['company_id', 'started_at'], unique=False,
                            postgresql_concurrently=True, if_not_exists=True)
            op.drop_index(NEW, table_name='call_charges', postgresql_concurrently=True, if_exists=True)
        return
    with op.batch_alter_table('call_charges', schema=None) as batch_op:
        batch_op.create_index(OLD, ['company_id', 'started_at'], unique=False)
        batch_op.drop_index(NEW)
