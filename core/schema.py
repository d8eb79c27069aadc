"""Database models. Money columns hold integer units of 0.0001 EUR (see core.money)."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON, BigInteger, Date, ForeignKey, Index, Integer, LargeBinary, MetaData, String, Text, UniqueConstraint, text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from core.clock import utcnow
from core.money import eur

# BIGINT on PostgreSQL; SQLite only auto-increments an INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def insert_or_ignore(session, model):
    """``INSERT ... ON CONFLICT DO NOTHING`` for the session's database (PostgreSQL or SQLite)."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(model).on_conflict_do_nothing()


DEFAULT_RATE_PER_MINUTE = eur("0.42")
DEFAULT_BILLING_INCREMENT_SECONDS = 1
DEFAULT_LOW_BALANCE_THRESHOLD = eur("20")
DEFAULT_AUTO_TOPUP_DAILY_LIMIT = 2


class Role(str, enum.Enum):
    COMPANY_ADMIN = "company_admin"
    COMPANY_MEMBER = "company_member"
    STAFF_SUPPORT = "staff_support"
    STAFF_ADMIN = "staff_admin"


class EntryType(str, enum.Enum):
    TOPUP = "topup"
    BONUS = "bonus"
    CHARGE = "charge"
    REFUND = "refund"
    ADJUSTMENT = "adjustment"
    TOPUP_REFUND = "topup_refund"
    BONUS_REVERSAL = "bonus_reversal"
    REFUND_FAILED = "refund_failed"  # a refund Stripe reported failed or canceled: its debit given back
    DISPUTE = "dispute"  # a payment disputed (chargeback, SEPA return): its credit taken back
    DISPUTE_WON = "dispute_won"  # a dispute closed as won: its debit given back


class Company(Base):
    __tablename__ = "companies"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    street: Mapped[str] = mapped_column(String(200), default="")
    postal_code: Mapped[str] = mapped_column(String(20), default="")
    city: Mapped[str] = mapped_column(String(100), default="")
    country: Mapped[str] = mapped_column(String(2), default="DE")
    vat_id: Mapped[str] = mapped_column(String(40), default="")
    language: Mapped[str] = mapped_column(String(5), default="de")
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    blocked_at: Mapped[datetime | None]  # blocked companies cannot start calls or top up
    blocked_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    balance: Mapped[PrepaidBalance] = relationship(back_populates="company", uselist=False)
    users: Mapped[list[User]] = relationship(back_populates="company")


class RoleChecks:
    """What a user's ``role`` allows, for the user row and the signed-in user's read-only copy."""

    @property
    def is_staff(self) -> bool:
        return self.role in (Role.STAFF_SUPPORT.value, Role.STAFF_ADMIN.value)

    @property
    def is_company_admin(self) -> bool:
        return self.role == Role.COMPANY_ADMIN.value


class User(RoleChecks, Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(20))
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id"), index=True)
    locale: Mapped[str | None] = mapped_column(String(5))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]
    # Part of every session of this user: raising it ends them all, server-side (logout, a new
    # password, a deactivation or a role change; core.accounts.users.end_sessions).
    session_generation: Mapped[int] = mapped_column(default=0, server_default="0")

    company: Mapped[Company | None] = relationship(back_populates="users")

    @property
    def is_active(self) -> bool:  # Flask-Login refuses inactive users
        return self.active


class BillingRate(Base):
    """A company's price for calls from ``valid_from`` on; the newest valid row applies."""

    __tablename__ = "billing_rates"
    __table_args__ = (Index("ix_billing_rates_company_valid_from", "company_id", "valid_from"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id"))
    rate_per_minute: Mapped[int] = mapped_column(BigInteger, default=DEFAULT_RATE_PER_MINUTE)
    billing_increment_seconds: Mapped[int] = mapped_column(default=DEFAULT_BILLING_INCREMENT_SECONDS)
    valid_from: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class BalanceFigures:
    """What follows from a balance's figures (``balance``, ``reserved``, ``low_balance_threshold``),
    for the balance row and the read-only copies that pages and lists make of it."""

    @property
    def available(self) -> int:
        return self.balance - self.reserved

    @property
    def is_low(self) -> bool:
        return self.balance < self.low_balance_threshold


class PrepaidBalance(BalanceFigures, Base):
    """One row per company. ``balance`` is written only by core.ledger.postings."""

    __tablename__ = "prepaid_balances"

    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id"), primary_key=True)
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    reserved: Mapped[int] = mapped_column(BigInteger, default=0)
    low_balance_threshold: Mapped[int] = mapped_column(BigInteger, default=DEFAULT_LOW_BALANCE_THRESHOLD)
    auto_topup_enabled: Mapped[bool] = mapped_column(default=False)
    auto_topup_threshold: Mapped[int | None] = mapped_column(BigInteger)
    auto_topup_amount: Mapped[int | None] = mapped_column(BigInteger)
    auto_topup_payment_method_id: Mapped[str | None] = mapped_column(String(255))
    auto_topup_daily_limit: Mapped[int] = mapped_column(default=DEFAULT_AUTO_TOPUP_DAILY_LIMIT)
    auto_topup_monthly_cap: Mapped[int | None] = mapped_column(BigInteger)
    auto_topup_consecutive_failures: Mapped[int] = mapped_column(default=0)
    last_warning_sent_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    company: Mapped[Company] = relationship(back_populates="balance")


class BalanceTransaction(Base):
    """The append-only ledger. Corrections are new rows, never edits."""

    __tablename__ = "balance_transactions"
    __table_args__ = (
        Index("ix_balance_transactions_company_created", "company_id", "created_at", "id"),
        Index("ix_balance_transactions_company_type_created", "company_id", "type", "created_at", "id"),
        # One ledger row of a kind per outside reference: a second delivery cannot post twice.
        UniqueConstraint("company_id", "type", "reference_type", "reference_id", name="uq_balance_transactions_reference"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id"))
    type: Mapped[str] = mapped_column(String(32))
    amount: Mapped[int] = mapped_column(BigInteger)
    balance_before: Mapped[int] = mapped_column(BigInteger)
    balance_after: Mapped[int] = mapped_column(BigInteger)
    description: Mapped[str] = mapped_column(Text, default="")
    reference_type: Mapped[str | None] = mapped_column(String(32))
    reference_id: Mapped[str | None] = mapped_column(String(255))
    actor: Mapped[str] = mapped_column(String(100), default="system")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    """A company's key for the usage API. Only a SHA-256 of the key is stored; it is shown once."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(12))  # the first characters, to tell keys apart
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class ReservationStatus(str, enum.Enum):
    ACTIVE = "active"
    CAPTURED = "captured"  # the call ended and was charged
    RELEASED = "released"
    EXPIRED = "expired"  # the call never ended


class CallReservation(Base):
    """Funds held for a live call; it resolves exactly once. Also the stored answer to a repeated start."""

    __tablename__ = "call_reservations"
    __table_args__ = (
        # call_id first: it also answers "is this call another company's?" on every start and end.
        UniqueConstraint("call_id", "company_id", name="uq_call_reservations_call_company"),
        Index("ix_call_reservations_status_started", "status", "started_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id"))
    call_id: Mapped[str] = mapped_column(String(100))
    amount: Mapped[int] = mapped_column(BigInteger)
    max_seconds: Mapped[int]
    rate_per_minute: Mapped[int] = mapped_column(BigInteger)
    billing_increment_seconds: Mapped[int]
    available_after: Mapped[int] = mapped_column(BigInteger)
    started_at: Mapped[datetime]
    from_number: Mapped[str | None] = mapped_column(String(64))
    to_number: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default=ReservationStatus.ACTIVE.value)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]


class CallCharge(Base):
    """One rated call, linked to its ledger entry. Rate and increment are those valid at the start."""

    __tablename__ = "call_charges"
    __table_args__ = (
        # call_id first: it also answers "is this call another company's?" on every start and end,
        # and a charge maintains one index fewer while it holds the company's balance row.
        UniqueConstraint("call_id", "company_id", name="uq_call_charges_call_company"),
        # Range scans and keyset pages of the usage page; on PostgreSQL also index-only aggregates.
        Index("ix_call_charges_company_started_id", "company_id", "started_at", "id",
              postgresql_include=["billed_seconds", "duration_seconds", "amount", "refunded_amount"]),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id"))
    call_id: Mapped[str] = mapped_column(String(100))
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    duration_seconds: Mapped[int]
    billed_seconds: Mapped[int]
    rate_per_minute: Mapped[int] = mapped_column(BigInteger)
    billing_increment_seconds: Mapped[int]
    amount: Mapped[int] = mapped_column(BigInteger)
    refund_status: Mapped[str] = mapped_column(String(20), default="none")  # none | partial | full
    refunded_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    ledger_entry_id: Mapped[int | None] = mapped_column(ForeignKey("balance_transactions.id"))
    balance_after: Mapped[int | None] = mapped_column(BigInteger)  # part of the stored answer to a repeated end
    from_number: Mapped[str | None] = mapped_column(String(64))
    to_number: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TopupStatus(str, enum.Enum):
    PENDING = "pending"  # checkout started, nothing paid yet
    PROCESSING = "processing"  # paid by SEPA, waiting for the bank
    CREDITED = "credited"  # final: money and bonus are on the balance
    FAILED = "failed"  # declined or SEPA failed; may still turn credited if the customer pays again in the same checkout
    CANCELED = "canceled"  # final: the customer left checkout
    EXPIRED = "expired"  # final: the checkout session expired
    REVIEW = "review"  # final until staff act: Stripe's report did not match the top-up; nothing credited
    REFUNDED = "refunded"  # final: under review, staff paid the payment back in full; nothing credited


FINAL_TOPUP_STATUSES = {TopupStatus.CREDITED.value, TopupStatus.CANCELED.value, TopupStatus.EXPIRED.value,
                        TopupStatus.REVIEW.value, TopupStatus.REFUNDED.value}


class BonusRule(Base):
    """Extra credit for a top-up of at least ``min_amount``: a percentage or a fixed amount."""

    __tablename__ = "bonus_rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    min_amount: Mapped[int] = mapped_column(BigInteger)
    percent_basis_points: Mapped[int | None]  # 500 = 5 %
    fixed_amount: Mapped[int | None] = mapped_column(BigInteger)
    valid_from: Mapped[datetime | None]
    valid_until: Mapped[datetime | None]
    first_topup_only: Mapped[bool] = mapped_column(default=False)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Topup(Base):
    __tablename__ = "topups"
    __table_args__ = (Index("ix_topups_company_created", "company_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # Stripe idempotency keys derive from this, never from the id alone: ids restart in a fresh database.
    request_key: Mapped[str] = mapped_column(String(64), unique=True, default=lambda: uuid.uuid4().hex)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id"))
    kind: Mapped[str] = mapped_column(String(20), default="checkout")  # checkout | auto
    amount: Mapped[int] = mapped_column(BigInteger)
    bonus_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    charged_cents: Mapped[int | None] = mapped_column(BigInteger)  # what the customer pays (gross)
    bonus_rule_id: Mapped[int | None] = mapped_column(ForeignKey("bonus_rules.id"))
    status: Mapped[str] = mapped_column(String(20), default=TopupStatus.PENDING.value)
    save_payment_method: Mapped[bool] = mapped_column(default=False)
    stripe_checkout_session_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    payment_method_type: Mapped[str | None] = mapped_column(String(40))
    failure_code: Mapped[str | None] = mapped_column(String(100))
    decline_code: Mapped[str | None] = mapped_column(String(100))
    failure_message: Mapped[str | None] = mapped_column(Text)
    refunded_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    credited_at: Mapped[datetime | None]

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_TOPUP_STATUSES


class RefundStatus(str, enum.Enum):
    """Stripe's refund statuses. A refund is debited when first reported pending or succeeded, and
    its debit given back once when Stripe reports it failed or canceled (see core.payments.refunds)."""

    PENDING = "pending"
    REQUIRES_ACTION = "requires_action"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


GIVEN_BACK_REFUND_STATUSES = {RefundStatus.FAILED.value, RefundStatus.CANCELED.value}


class TopupRefund(Base):
    """A refund of (part of) a top-up in Stripe, recorded once per Stripe refund id. A refund that
    failed or was canceled keeps its row (its amounts say what was debited), with ``given_back_at``:
    it no longer counts against the payment."""

    __tablename__ = "topup_refunds"

    id: Mapped[int] = mapped_column(primary_key=True)
    topup_id: Mapped[int] = mapped_column(ForeignKey("topups.id"), index=True)
    stripe_refund_id: Mapped[str] = mapped_column(String(255), unique=True)
    refunded_cents: Mapped[int] = mapped_column(BigInteger)  # money paid back (gross)
    amount: Mapped[int] = mapped_column(BigInteger)  # units debited from the balance
    bonus_reversed: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(20), default=RefundStatus.SUCCEEDED.value)
    given_back_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DisputeStatus(str, enum.Enum):
    """Stripe's dispute statuses; ``warning_*`` are inquiries, which move no money."""

    WARNING_NEEDS_RESPONSE = "warning_needs_response"
    WARNING_UNDER_REVIEW = "warning_under_review"
    WARNING_CLOSED = "warning_closed"
    NEEDS_RESPONSE = "needs_response"
    UNDER_REVIEW = "under_review"
    WON = "won"
    LOST = "lost"


CLOSED_DISPUTE_STATUSES = {DisputeStatus.WON.value, DisputeStatus.LOST.value, DisputeStatus.WARNING_CLOSED.value}


class Dispute(Base):
    """A dispute of a top-up's payment (a card chargeback, a SEPA return), recorded once per Stripe
    dispute id with what was debited for it; ``given_back_at`` once a won dispute gave it back."""

    __tablename__ = "disputes"
    __table_args__ = (Index("ix_disputes_company_created", "company_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    stripe_dispute_id: Mapped[str] = mapped_column(String(255), unique=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id"))
    topup_id: Mapped[int] = mapped_column(ForeignKey("topups.id"), index=True)
    charge_id: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(String(100), default="")
    disputed_cents: Mapped[int] = mapped_column(BigInteger)  # what Stripe says the dispute is about
    debited_cents: Mapped[int] = mapped_column(BigInteger, default=0)  # of it, what was still ours to take back
    amount: Mapped[int] = mapped_column(BigInteger, default=0)  # units debited from the balance
    bonus_reversed: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]
    given_back_at: Mapped[datetime | None]

    @property
    def is_open(self) -> bool:
        return self.status not in CLOSED_DISPUTE_STATUSES


class WebhookStatus(str, enum.Enum):
    RECEIVED = "received"
    PROCESSED = "processed"
    FAILED = "failed"
    IGNORED = "ignored"


class WebhookEvent(Base):
    """Every Stripe event, stored before it is acted on; the unique event id stops double work."""

    __tablename__ = "webhook_events"
    __table_args__ = (Index("ix_webhook_events_status_received", "status", "received_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    stripe_event_id: Mapped[str] = mapped_column(String(255), unique=True)
    type: Mapped[str] = mapped_column(String(100), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default=WebhookStatus.RECEIVED.value)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(default=0)
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id"), index=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[datetime | None]


class DocumentKind(str, enum.Enum):
    INVOICE = "invoice"
    CREDIT_NOTE = "credit_note"
    CREDIT_NOTE_CANCELLATION = "cancellation"  # cancels a credit note whose refund failed (fits String(20))


class DocumentSequence(Base):
    """The last number issued per kind and year; its row lock makes numbering gapless."""

    __tablename__ = "document_sequences"

    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    year: Mapped[int] = mapped_column(primary_key=True)
    last_number: Mapped[int] = mapped_column(default=0)


class Invoice(Base):
    """An issued invoice or credit note. Amounts in cents; the stored PDF never changes."""

    __tablename__ = "invoices"
    __table_args__ = (
        UniqueConstraint("kind", "year", "sequence", name="uq_invoices_kind_year_sequence"),
        Index("ix_invoices_company_issued", "company_id", "issued_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    number: Mapped[str] = mapped_column(String(30), unique=True)
    year: Mapped[int]
    sequence: Mapped[int]
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id"))
    topup_id: Mapped[int | None] = mapped_column(ForeignKey("topups.id"), unique=True)  # invoices
    topup_refund_id: Mapped[int | None] = mapped_column(ForeignKey("topup_refunds.id"), unique=True)  # credit notes
    cancels_invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id"), unique=True)  # cancellations
    language: Mapped[str] = mapped_column(String(5))
    net_cents: Mapped[int] = mapped_column(BigInteger)
    vat_cents: Mapped[int] = mapped_column(BigInteger)
    gross_cents: Mapped[int] = mapped_column(BigInteger)
    vat_rate_basis_points: Mapped[int]
    bonus_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    pdf: Mapped[bytes] = mapped_column(LargeBinary)
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)


class MonthlyStatement(Base):
    """A company's usage statement for one calendar month (figures from the ledger)."""

    __tablename__ = "monthly_statements"
    __table_args__ = (UniqueConstraint("company_id", "month", name="uq_monthly_statements_company_month"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id"))
    month: Mapped[date] = mapped_column(Date)  # first day of the month
    language: Mapped[str] = mapped_column(String(5))
    figures: Mapped[dict[str, Any]] = mapped_column(JSON)
    pdf: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class EmailStatus(str, enum.Enum):
    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"  # the last attempt failed; it is retried


class SentEmail(Base):
    """Every message the system sends, recorded before sending; the dedupe key stops doubles."""

    __tablename__ = "sent_emails"
    __table_args__ = (Index("ix_sent_emails_company_created", "company_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id"))
    kind: Mapped[str] = mapped_column(String(50))
    recipient: Mapped[str] = mapped_column(String(254))
    language: Mapped[str] = mapped_column(String(5))
    subject: Mapped[str] = mapped_column(String(300), default="")
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    context: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id"))
    status: Mapped[str] = mapped_column(String(20), default=EmailStatus.QUEUED.value)
    attempts: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]


class FollowupOutbox(Base):
    """The transactional outbox of follow-up work (core.followups): a row is written in the transaction
    that requests the work and deleted once the work was handed to the job queue. A row that outlives a
    short grace was never handed over (Redis was down, the process died) and is handed over by the sweep."""

    __tablename__ = "followup_outbox"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))  # a core.followups.Followup
    ids: Mapped[list[int]] = mapped_column(JSON)  # the ids its job takes
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class AutoTopupStatus(str, enum.Enum):
    PENDING = "pending"  # enqueued, not charged yet
    PROCESSING = "processing"  # SEPA: waiting for the bank
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ACTION_REQUIRED = "action_required"  # the bank wants the customer to authenticate
    SKIPPED = "skipped"  # a limit stopped it


IN_FLIGHT_AUTO_TOPUP = (AutoTopupStatus.PENDING.value, AutoTopupStatus.PROCESSING.value)


class AutoTopupAttempt(Base):
    """One automatic top-up attempt. At most one per company is in flight (partial unique index)."""

    __tablename__ = "auto_topup_attempts"
    __table_args__ = (
        Index("ix_auto_topup_attempts_company_created", "company_id", "created_at"),
        Index("uq_auto_topup_attempts_in_flight", "company_id", unique=True,
              postgresql_where=text("status IN ('pending', 'processing')"),
              sqlite_where=text("status IN ('pending', 'processing')")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(20), default=AutoTopupStatus.PENDING.value)
    reason: Mapped[str | None] = mapped_column(String(100))  # skip reason or failure code
    decline_code: Mapped[str | None] = mapped_column(String(100))
    message: Mapped[str | None] = mapped_column(Text)
    topup_id: Mapped[int | None] = mapped_column(ForeignKey("topups.id"))
    payment_method_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class AuditRecord(Base):
    """Who did what to which object, with the state before and after and the reason. Append-only:
    nothing in the application updates or deletes these rows (on PostgreSQL a trigger refuses it)."""

    __tablename__ = "audit_records"
    __table_args__ = (
        Index("ix_audit_records_company_created", "company_id", "created_at"),
        Index("ix_audit_records_created", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor_email: Mapped[str] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(60))
    target_type: Mapped[str] = mapped_column(String(40))
    target_id: Mapped[str] = mapped_column(String(100))
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id"))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    reason: Mapped[str] = mapped_column(Text, default="")
    ip_address: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(20), default="done")  # done | denied
    request_key: Mapped[str | None] = mapped_column(String(64), unique=True)  # one action per submitted form
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CallRefund(Base):
    """A (partial) refund of a call's charge by staff, booked as a ledger refund entry."""

    __tablename__ = "call_refunds"

    id: Mapped[int] = mapped_column(primary_key=True)
    call_charge_id: Mapped[int] = mapped_column(ForeignKey("call_charges.id"), index=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    seconds: Mapped[int | None]
    reason: Mapped[str] = mapped_column(Text)
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    ledger_entry_id: Mapped[int | None] = mapped_column(ForeignKey("balance_transactions.id"))
    request_key: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
