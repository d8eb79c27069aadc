"""users: session generation, so that every session of a user can be ended server-side

Revision ID: e5b8c1d2a3f4
Revises: 7b1e4c2d9a10
Create Date: 2026-12-02 05:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'e5b8c1d2a3f4'
down_revision = '7b1e4c2d9a10'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_generation', sa.Integer(), server_default='0', nullable=False))


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('session_generation')
