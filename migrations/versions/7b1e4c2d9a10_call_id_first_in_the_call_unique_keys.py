"""call id first in the unique keys of call charges and reservations (one index instead of two)

Revision ID: 7b1e4c2d9a10
Revises: 052a9d33df83
Create Date: 2026-11-22 00:10:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '7b1e4c2d9a10'
down_revision = '052a9d33df83'
branch_labels = None
depends_on = None

TABLES = {"call_charges": ("uq_call_charges_company_call", "ix_call_charges_call_id", "uq_call_charges_call_company"),
          "call_reservations": ("uq_call_reservations_company_call", "ix_call_reservations_call_id",
                                "uq_call_reservations_call_company")}


def upgrade():
    for table, (old_unique, call_id_index, new_unique) in TABLES.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(call_id_index)
            batch_op.drop_constraint(old_unique, type_="unique")
            batch_op.create_unique_constraint(new_unique, ["call_id", "company_id"])


def downgrade():
    for table, (old_unique, call_id_index, new_unique) in TABLES.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(new_unique, type_="unique")
            batch_op.create_unique_constraint(old_unique, ["company_id", "call_id"])
            batch_op.create_index(call_id_index, ["call_id"], unique=False)
