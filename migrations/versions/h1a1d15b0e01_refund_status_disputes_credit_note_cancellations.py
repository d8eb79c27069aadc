"""refund status, disputes, credit note cancellations (issue 13, section 2)

Revision ID: h1a1d15b0e01
Revises: e3a5c0f1b2d4
Create Date: 2026-01-01 00:00:00

"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = 'h1a1d15b0e01'
down_revision = 'e3a5c0f1b2d4'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

def upgrade():
    with op.batch_alter_table('topup_refunds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status', sa.String(length=20), nullable=False, server_default='succeeded'))
        batch_op.add_column(sa.Column('given_back_at', sa.DateTime(), nullable=True))

    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cancels_invoice_id', sa.Integer(), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_invoices_cancels_invoice_id'), ['cancels_invoice_id'])
        batch_op.create_foreign_key(batch_op.f('fk_invoices_cancels_invoice_id_invoices'), 'invoices',
                                    ['cancels_invoice_id'], ['id'])

    op.create_table(
        'disputes',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('stripe_dispute_id', sa.String(length=255), nullable=False),
        sa.Column('company_id', sa.Integer(), nullable=False),
        sa.Column('topup_id', sa.Integer(), nullable=False),
        sa.Column('charge_id', sa.String(length=255), nullable=True),
        sa.Column('status', sa.String(length=40), nullable=False),
        sa.Column('reason', sa.String(length=100), nullable=False),
        sa.Column('disputed_cents', sa.BigInteger(), nullable=False),
        sa.Column('debited_cents', sa.BigInteger(), nullable=False),
        sa.Column('amount', sa.BigInteger(), nullable=False),
        sa.Column('bonus_reversed', sa.BigInteger(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('closed_at', sa.DateTime(), nullable=True),
        sa.Column('given_back_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['company_id'], ['companies.id'], name=op.f('fk_disputes_company_id_companies')),
        sa.ForeignKeyConstraint(['topup_id'], ['topups.id'], name=op.f('fk_disputes_topup_id_topups')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_disputes')),
        sa.UniqueConstraint('stripe_dispute_id', name=op.f('uq_disputes_stripe_dispute_id')),
    )
    with op.batch_alter_table('disputes', schema=None) as batch_op:
        batch_op.create_index('ix_disputes_company_created', ['company_id', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_disputes_topup_id'), ['topup_id'], unique=False)

def downgrade():
    with op.batch_alter_table('disputes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_disputes_topup_id'))
        batch_op.drop_index('ix_disputes_company_created')
    op.drop_table('disputes')

    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_invoices_cancels_invoice_id_invoices'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('uq_invoices_cancels_invoice_id'), type_='unique')
        batch_op.drop_column('cancels_invoice_id')

    with op.batch_alter_table('topup_refunds', schema=None) as batch_op:
        batch_op.drop_column('given_back_at')
        batch_op.drop_column('status')
