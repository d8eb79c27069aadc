"""The transactional outbox of follow-up work (followup_outbox)

Revision ID: e3a5c0f1b2d4
Revises: e5b8c1d2a3f4
Create Date: 2026-11-23 10:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'e3a5c0f1b2d4'
down_revision = 'e5b8c1d2a3f4'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "followup_outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("ids", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_followup_outbox")),
    )
    with op.batch_alter_table("followup_outbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_followup_outbox_created_at"), ["created_at"], unique=False)


def downgrade():
    with op.batch_alter_table("followup_outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_followup_outbox_created_at"))
    op.drop_table("followup_outbox")
