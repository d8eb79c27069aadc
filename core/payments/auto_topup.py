"""Automatic top-ups: when the balance runs low, charge the saved payment method off-session.

1. :func:`maybe_trigger` runs after every call charge. When the global switch (``AUTO_TOPUP_ENABLED``)
   and the company's setting are on, a payment method is chosen and the available balance
   (balance − reserved) is below the threshold, it inserts one *pending* :class:`AutoTopupAttempt`
   and requests the follow-up ``RUN_AUTO_TOPUP`` (its job runs after the commit). The partial unique
   index (one pending/processing attempt per company) decides between concurrent charges: the second
   INSERT does nothing, and neither does the trigger.

   **Limits are checked here**, right after that INSERT, while the new row still holds the company's
   single-flight slot (so two charges cannot both pass the check): the non-skipped attempts of the
   local day (``DISPLAY_TIMEZONE``) against the daily limit, and succeeded + processing amounts of the
   local month plus this one against the monthly cap. Over a limit, the attempt is recorded as
   ``skipped`` (reason ``daily_limit`` / ``monthly_cap``), nothing is charged, and the customer gets one
   email per limit and day/month (dedupe key). Further triggers in the same day/month record no more
   skipped rows: the history would otherwise fill up with one row per call.

2. The job creates the ``Topup`` (kind ``auto``) and charges the saved method off-session with an
   idempotency key from the top-up's ``request_key``, in two named steps, each its own unit of work:
   :func:`claim_attempt` (the top-up recorded and linked before Stripe is asked) and
   :func:`charge_attempt` (the charge and its outcome); the PaymentIntent's metadata
   carries ``topup_id``, so the ``payment_intent.*`` webhooks find the same top-up. Money is credited
   only by :func:`core.payments.topups.credit_topup` (exactly once, bonus rules, invoice and receipt), whoever
   gets there first: this job or the webhook.

3. The attempt follows its top-up (:func:`settle_attempt`): credited → ``succeeded`` (failures reset,
   email); failed → ``failed`` (code, decline code, message; failures + 1, email; at
   :data:`MAX_CONSECUTIVE_FAILURES` auto top-up switches itself off and says so) or, for
   ``authentication_required``, ``action_required`` (email with a link to a normal Checkout top-up of
   the same amount); processing (SEPA) → ``processing`` until the bank settles. Each transition is a
   conditional UPDATE, so a concurrent webhook and job count and email once. SEPA settles through the
   webhooks, which call ``credit_topup`` / ``mark_failed``; the attempt catches up through
   :func:`topup_settled` (the hook for those two, via the follow-up ``AUTO_TOPUP_SETTLED``) and,
   should that job be lost, through :func:`reconcile`, run by every trigger, every save of the
   settings and a periodic job (:func:`companies_out_of_line`). Viewing the settings page
   (:func:`overview`) only reads: a GET changes nothing and sends no email.

``action_required`` does not block forever: it holds back new automatic attempts for
:data:`ACTION_REQUIRED_PAUSE` (24 h), unless a top-up has been credited since (the customer paid) or the
settings changed (another payment method or amount). So there is at most one such email a day.

A charge whose outcome is unknown (network, Stripe API or key errors) leaves the attempt pending and
re-raises, so the job queue retries it with the same idempotency key; a pending attempt nobody has
touched for :data:`STALE_PENDING` is handed to a worker again by the next trigger.

Nothing here commits: the entry point (the usage API after a call, the settings form, the jobs)
commits each unit of work.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from core.clock import utcnow
from core.followups import Followup, request_followup
from core.notifications.mail import EmailKind, queue_email
from core.schema import (
    IN_FLIGHT_AUTO_TOPUP, AutoTopupAttempt, AutoTopupStatus, Company, PrepaidBalance, Topup, TopupStatus,
    insert_or_ignore,
)
from core.money import UNITS_PER_CENT, plain_amount
from core.payments.methods import company_payment_methods
from core.payments.gateway import PaymentError, PaymentIntent, StripeGateway
from core.payments.topups import (
    AmountOutOfRange, Paid, TopupLimits, credit_on_evidence, mark_expired, mark_failed, mark_processing,
)
from core.documents.vat import VatPolicy, split_topup

log = logging.getLogger(__name__)

MAX_CONSECUTIVE_FAILURES = 3
ACTION_REQUIRED_PAUSE = timedelta(hours=24)
STALE_PENDING = timedelta(minutes=30)
MAX_DAILY_LIMIT = 24
HISTORY_LENGTH = 50
AUTHENTICATION_REQUIRED = "authentication_required"
# Errors after which we do not know whether Stripe charged: retry with the same idempotency key.
UNKNOWN_OUTCOME_KINDS = ("network", "api", "auth")

DAILY_LIMIT, MONTHLY_CAP = "daily_limit", "monthly_cap"
DISABLED, BALANCE_RECOVERED = "disabled", "balance_recovered"

# A limit-reached message of its own is proposed for core/notifications/mail.py; until it exists the failure email
# carries the limit as its reason (context keys ``limit_reason``, ``daily_limit``, ``monthly_cap``).
LIMIT_EMAIL_KIND = EmailKind.AUTO_TOPUP_LIMIT_REACHED


@dataclass(frozen=True)
class AutoTopupPolicy:
    """What the engine needs from the configuration, as plain values."""

    enabled: bool = True  # AUTO_TOPUP_ENABLED, the global switch
    timezone: str = "Europe/Berlin"  # local days and months for the limits
    portal_base_url: str = "http://127.0.0.1:5000"  # links in emails

    @classmethod
    def from_config(cls, config) -> AutoTopupPolicy:
        return cls(bool(config["AUTO_TOPUP_ENABLED"]), config.get("BABEL_DEFAULT_TIMEZONE") or "Europe/Berlin",
                   config["PORTAL_BASE_URL"])


# -- settings -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AutoTopupSettings:
    enabled: bool
    threshold: int | None
    amount: int | None
    payment_method_id: str | None
    daily_limit: int
    monthly_cap: int | None


class InvalidSettings(Exception):
    """``errors`` maps a field to a stable code (``missing``, ``out_of_range``, ``below_amount``, ...)."""

    def __init__(self, errors: dict[str, str]):
        super().__init__(", ".join(f"{field}: {code}" for field, code in errors.items()))
        self.errors = errors


def current_settings(session: Session, company_id: int) -> AutoTopupSettings:
    account = session.get(PrepaidBalance, company_id, populate_existing=True)
    return AutoTopupSettings(account.auto_topup_enabled, account.auto_topup_threshold, account.auto_topup_amount,
                             account.auto_topup_payment_method_id, account.auto_topup_daily_limit,
                             account.auto_topup_monthly_cap)


def validate_settings(settings: AutoTopupSettings, limits: TopupLimits, method_ids: set[str]) -> dict[str, str]:
    """Field → error code. Switched off, empty threshold and amount are fine; given values must be valid."""
    errors: dict[str, str] = {}
    if settings.threshold is None:
        if settings.enabled:
            errors["threshold"] = "missing"
    elif settings.threshold < 0:
        errors["threshold"] = "negative"
    elif settings.threshold % UNITS_PER_CENT or settings.threshold > limits.maximum:
        errors["threshold"] = "out_of_range"
    if settings.amount is None:
        if settings.enabled:
            errors["amount"] = "missing"
    else:
        try:
            limits.check(settings.amount)
        except AmountOutOfRange:
            errors["amount"] = "out_of_range"
    if not 1 <= settings.daily_limit <= MAX_DAILY_LIMIT:
        errors["daily_limit"] = "out_of_range"
    if settings.monthly_cap is not None:
        if settings.monthly_cap <= 0 or settings.monthly_cap % UNITS_PER_CENT:
            errors["monthly_cap"] = "out_of_range"
        elif settings.amount is not None and settings.monthly_cap < settings.amount:
            errors["monthly_cap"] = "below_amount"
    if settings.payment_method_id is None:
        if settings.enabled:
            errors["payment_method"] = "missing"
    elif settings.payment_method_id not in method_ids:
        errors["payment_method"] = "unknown"
    return errors


def save_settings(session: Session, gateway: StripeGateway, company_id: int, settings: AutoTopupSettings,
                  limits: TopupLimits) -> None:
    """Validate and store; raises :class:`InvalidSettings` (or ``PaymentError`` when Stripe cannot list
    the methods). Switching on, or onto another method, starts the failure count afresh."""
    method_ids = ({method.id for method in company_payment_methods(session, gateway, company_id)}
                  if settings.payment_method_id else set())
    errors = validate_settings(settings, limits, method_ids)
    if errors:
        raise InvalidSettings(errors)
    account = session.get(PrepaidBalance, company_id, populate_existing=True)
    values = {
        "auto_topup_enabled": settings.enabled,
        "auto_topup_threshold": settings.threshold,
        "auto_topup_amount": settings.amount,
        "auto_topup_payment_method_id": settings.payment_method_id,
        "auto_topup_daily_limit": settings.daily_limit,
        "auto_topup_monthly_cap": settings.monthly_cap,
    }
    if settings.enabled and (not account.auto_topup_enabled
                             or settings.payment_method_id != account.auto_topup_payment_method_id):
        values["auto_topup_consecutive_failures"] = 0
    # Only these columns: the balance on the same row belongs to the ledger.
    session.execute(update(PrepaidBalance).where(PrepaidBalance.company_id == company_id).values(**values))


# -- the trigger ----------------------------------------------------------------------------------------

def maybe_trigger(session: Session, company_id: int, *, policy: AutoTopupPolicy,
                  now: datetime | None = None) -> AutoTopupAttempt | None:
    """Start an automatic top-up if one is due; returns the new attempt (pending or skipped) or None.

    Call it after the charge is committed; one unit of work, the caller commits. It first brings the
    company's attempts in line with their top-ups (:func:`reconcile`).
    """
    if not policy.enabled:
        return None
    now = now or utcnow()
    account = session.get(PrepaidBalance, company_id, populate_existing=True)
    if account is None or not _switched_on(account):
        return None
    company = session.get(Company, company_id)
    if company.blocked_at is not None:
        return None
    reconcile(session, company_id, policy=policy)
    account = session.get(PrepaidBalance, company_id, populate_existing=True)
    if not _switched_on(account) or account.available >= account.auto_topup_threshold:
        return None
    in_flight = session.scalar(select(AutoTopupAttempt).where(
        AutoTopupAttempt.company_id == company_id, AutoTopupAttempt.status.in_(IN_FLIGHT_AUTO_TOPUP)))
    if in_flight is not None:
        _hand_over_if_stale(session, in_flight, now)
        return None
    if awaiting_customer(session, company_id, now=now) is not None:
        return None

    # The partial unique index: a concurrent trigger's attempt in flight makes this INSERT do nothing.
    attempt_id = session.execute(insert_or_ignore(session, AutoTopupAttempt).values(
        company_id=company_id, amount=account.auto_topup_amount, status=AutoTopupStatus.PENDING.value,
        payment_method_id=account.auto_topup_payment_method_id, created_at=now,
    ).returning(AutoTopupAttempt.id)).scalar()
    if attempt_id is None:
        return None
    attempt = session.get(AutoTopupAttempt, attempt_id)
    over = _limit_reached(session, account, attempt, now, policy)
    if over is None:
        request_followup(session, Followup.RUN_AUTO_TOPUP, attempt.id)
        return attempt
    reason, period_start, period_key = over
    already = session.scalar(select(AutoTopupAttempt.id).where(
        AutoTopupAttempt.company_id == company_id, AutoTopupAttempt.status == AutoTopupStatus.SKIPPED.value,
        AutoTopupAttempt.reason == reason, AutoTopupAttempt.created_at >= period_start,
        AutoTopupAttempt.id != attempt.id).limit(1))
    if already is not None:
        session.delete(attempt)  # this trigger records nothing: the period's skip is on record already
        session.flush()
        return None
    attempt.status, attempt.reason, attempt.finished_at = AutoTopupStatus.SKIPPED.value, reason, now
    _email(session, company_id, LIMIT_EMAIL_KIND, f"auto-topup-limit:{company_id}:{reason}:{period_key}", {
        "amount": attempt.amount, "failure_code": reason, "limit_reason": reason,
        "daily_limit": account.auto_topup_daily_limit, "monthly_cap": account.auto_topup_monthly_cap,
        "balance": account.balance,
    })
    return attempt


def _switched_on(account: PrepaidBalance) -> bool:
    return bool(account.auto_topup_enabled and account.auto_topup_payment_method_id
                and account.auto_topup_threshold is not None and account.auto_topup_amount)


def _periods(now: datetime, zone_name: str) -> tuple[datetime, str, datetime, str]:
    """(start of the local day, its key, start of the local month, its key) as naive UTC times."""
    zone = ZoneInfo(zone_name)
    local = now.replace(tzinfo=ZoneInfo("UTC")).astimezone(zone)

    def utc(day) -> datetime:
        return datetime.combine(day, time.min, zone).astimezone(ZoneInfo("UTC")).replace(tzinfo=None)

    day = local.date()
    return utc(day), day.isoformat(), utc(day.replace(day=1)), f"{day:%Y-%m}"


def _limit_reached(session: Session, account: PrepaidBalance, attempt: AutoTopupAttempt, now: datetime,
                   policy: AutoTopupPolicy) -> tuple[str, datetime, str] | None:
    day_start, day_key, month_start, month_key = _periods(now, policy.timezone)
    others = and_(AutoTopupAttempt.company_id == account.company_id, AutoTopupAttempt.id != attempt.id)
    today = session.scalar(select(func.count()).select_from(AutoTopupAttempt).where(
        others, AutoTopupAttempt.created_at >= day_start, AutoTopupAttempt.status != AutoTopupStatus.SKIPPED.value))
    if today >= account.auto_topup_daily_limit:
        return DAILY_LIMIT, day_start, day_key
    if account.auto_topup_monthly_cap is not None:
        spent = session.scalar(select(func.coalesce(func.sum(AutoTopupAttempt.amount), 0)).where(
            others, AutoTopupAttempt.created_at >= month_start,
            AutoTopupAttempt.status.in_((AutoTopupStatus.SUCCEEDED.value, AutoTopupStatus.PROCESSING.value))))
        if spent + attempt.amount > account.auto_topup_monthly_cap:
            return MONTHLY_CAP, month_start, month_key
    return None


def awaiting_customer(session: Session, company_id: int, *, now: datetime | None = None) -> AutoTopupAttempt | None:
    """The action-required attempt that still holds back automatic attempts, if any (see module doc)."""
    now = now or utcnow()
    latest = session.scalar(select(AutoTopupAttempt).where(
        AutoTopupAttempt.company_id == company_id, AutoTopupAttempt.status == AutoTopupStatus.ACTION_REQUIRED.value,
        AutoTopupAttempt.created_at > now - ACTION_REQUIRED_PAUSE,
    ).order_by(AutoTopupAttempt.created_at.desc(), AutoTopupAttempt.id.desc()).limit(1))
    if latest is None:
        return None
    account = session.get(PrepaidBalance, company_id)
    if (latest.payment_method_id, latest.amount) != (account.auto_topup_payment_method_id, account.auto_topup_amount):
        return None  # the settings changed since
    paid_since = session.scalar(select(Topup.id).where(
        Topup.company_id == company_id, Topup.status == TopupStatus.CREDITED.value,
        Topup.credited_at >= latest.created_at).limit(1))
    return None if paid_since is not None else latest


def _hand_over_if_stale(session: Session, attempt: AutoTopupAttempt, now: datetime) -> None:
    """A pending attempt nobody touched for STALE_PENDING (its job was lost or kept failing) runs again."""
    if attempt.status != AutoTopupStatus.PENDING.value:
        return
    if attempt.topup_id is None:
        due = now - attempt.created_at >= STALE_PENDING
    else:  # the top-up's updated_at is when a job last took it up; claiming it stops a second hand-over
        due = bool(session.execute(
            update(Topup).where(Topup.id == attempt.topup_id, Topup.status == TopupStatus.PENDING.value,
                                Topup.updated_at <= now - STALE_PENDING).values(updated_at=now)
        ).rowcount)
    if due:
        log.warning("auto top-up attempt %s was pending since %s: running it again", attempt.id, attempt.created_at)
        request_followup(session, Followup.RUN_AUTO_TOPUP, attempt.id)


# -- the job ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ClaimedCharge:
    """An attempt claimed for charging, and the top-up whose ``request_key`` is the idempotency key."""

    attempt_id: int
    topup_id: int


def claim_attempt(session: Session, attempt_id: int, *, vat: VatPolicy,
                  policy: AutoTopupPolicy) -> ClaimedCharge | None:
    """Step 1 of 2 of the job: claim a pending attempt for charging — its top-up created and linked
    once (or, for a second run, touched: the time it was last taken up) — and return what to charge.
    The caller commits this before step 2 asks Stripe, so a crash leaves the top-up whose key a
    retry charges with again. Returns None when there is nothing to charge: the attempt was settled
    already, or is settled (a webhook told us the outcome) or skipped here — the caller commits that
    too. Safe to run twice: the top-up is created once, Stripe sees the same idempotency key,
    crediting is exactly-once and every attempt transition is claimed once."""
    attempt = session.get(AutoTopupAttempt, attempt_id, populate_existing=True)
    if attempt is None or attempt.status != AutoTopupStatus.PENDING.value:
        return None
    if attempt.topup_id is not None:
        topup = session.get(Topup, attempt.topup_id, populate_existing=True)
        if topup.status != TopupStatus.PENDING.value:  # a webhook told us the outcome already
            settle_attempt(session, attempt.id, policy=policy)
            return None
    account = session.get(PrepaidBalance, attempt.company_id, populate_existing=True)
    company = session.get(Company, attempt.company_id)
    if (not policy.enabled or not _switched_on(account) or company.blocked_at is not None
            or not company.stripe_customer_id):
        _skip(session, attempt, DISABLED)
        return None
    if attempt.topup_id is None and account.available >= account.auto_topup_threshold:
        _skip(session, attempt, BALANCE_RECOVERED)  # e.g. a manual top-up arrived meanwhile
        return None
    topup = _topup_for(session, attempt, account.auto_topup_payment_method_id, vat)
    return ClaimedCharge(attempt.id, topup.id)


def charge_attempt(session: Session, gateway: StripeGateway, charge: ClaimedCharge, *,
                   policy: AutoTopupPolicy) -> AutoTopupAttempt:
    """Step 2 of 2 of the job: charge the saved method off-session, then record the outcome (the top-up
    credited, processing or failed, and the attempt following it); the caller commits.

    When the outcome is unknown (network, Stripe API or key errors) the error text is noted on the
    attempt, which stays pending, and the ``PaymentError`` re-raised: the caller commits the note and
    re-raises, so the queue retries with the same idempotency key."""
    attempt = session.get(AutoTopupAttempt, charge.attempt_id, populate_existing=True)
    topup = session.get(Topup, charge.topup_id, populate_existing=True)
    company = session.get(Company, attempt.company_id)
    try:
        intent = gateway.charge_saved_method(
            attempt_key=f"topup-{topup.request_key}-auto", customer_id=company.stripe_customer_id,
            payment_method_id=attempt.payment_method_id, amount_cents=topup.charged_cents,
            description=f"Automatic top-up #{topup.id}",
            metadata={"topup_id": str(topup.id), "auto_topup_attempt_id": str(attempt.id),
                      "company_id": str(attempt.company_id)},
        )
    except PaymentError as error:
        if error.kind in UNKNOWN_OUTCOME_KINDS:
            session.execute(update(AutoTopupAttempt).where(AutoTopupAttempt.id == attempt.id)
                            .values(message=str(error)[:2000]))
            raise  # the queue retries with the same idempotency key
        _remember_intent(session, topup.id, (error.payment_intent or {}).get("id"))
        mark_failed(session, topup.id, error.code or error.kind, error.decline_code, error.message)
        return settle_attempt(session, attempt.id, policy=policy)
    return _apply_intent(session, attempt, topup, intent, policy, live=not gateway.is_test_mode)


def _topup_for(session: Session, attempt: AutoTopupAttempt, method_id: str, vat: VatPolicy) -> Topup:
    if attempt.topup_id is not None:
        session.execute(update(Topup).where(Topup.id == attempt.topup_id).values(updated_at=utcnow()))
        return session.get(Topup, attempt.topup_id, populate_existing=True)
    topup = Topup(company_id=attempt.company_id, kind="auto", amount=attempt.amount,
                  status=TopupStatus.PENDING.value, charged_cents=split_topup(attempt.amount, vat).gross_cents)
    session.add(topup)
    session.flush()
    claimed = session.execute(
        update(AutoTopupAttempt).where(AutoTopupAttempt.id == attempt.id, AutoTopupAttempt.topup_id.is_(None))
        .values(topup_id=topup.id, payment_method_id=method_id)
    ).rowcount
    if not claimed:  # a second run of this job linked its top-up first: this one is not needed
        session.delete(topup)
        session.flush()
        attempt = session.get(AutoTopupAttempt, attempt.id, populate_existing=True)
        return session.get(Topup, attempt.topup_id, populate_existing=True)
    return topup


def _remember_intent(session: Session, topup_id: int, intent_id: str | None) -> None:
    if intent_id:
        session.execute(update(Topup).where(Topup.id == topup_id)
                        .values(stripe_payment_intent_id=func.coalesce(Topup.stripe_payment_intent_id, intent_id)))


def _apply_intent(session: Session, attempt: AutoTopupAttempt, topup: Topup, intent: PaymentIntent,
                  policy: AutoTopupPolicy, *, live: bool) -> AutoTopupAttempt:
    method_type = intent.payment_method_types[0] if len(intent.payment_method_types) == 1 else None
    if intent.status == "succeeded":
        _remember_intent(session, topup.id, intent.id)  # Stripe's answer to our own charge: staff find it under review
        credit_on_evidence(session, topup, Paid.by_intent(intent), live=live, payment_intent_id=intent.id,
                           payment_method_type=method_type)
    elif intent.status == "processing":
        _remember_intent(session, topup.id, intent.id)
        mark_processing(session, topup.id, payment_method_type=method_type or "sepa_debit")
    elif intent.status == "requires_action":
        _remember_intent(session, topup.id, intent.id)
        mark_failed(session, topup.id, AUTHENTICATION_REQUIRED, None, intent.error_message)
    else:
        _remember_intent(session, topup.id, intent.id)
        mark_failed(session, topup.id, intent.error_code, intent.decline_code, intent.error_message)
    return settle_attempt(session, attempt.id, policy=policy)


def _skip(session: Session, attempt: AutoTopupAttempt, reason: str) -> AutoTopupAttempt:
    session.execute(update(AutoTopupAttempt).where(
        AutoTopupAttempt.id == attempt.id, AutoTopupAttempt.status == AutoTopupStatus.PENDING.value
    ).values(status=AutoTopupStatus.SKIPPED.value, reason=reason, finished_at=utcnow()))
    if attempt.topup_id is not None:  # never charged as far as we know; a late payment would still credit it
        mark_expired(session, attempt.topup_id)
    return session.get(AutoTopupAttempt, attempt.id, populate_existing=True)


# -- the attempt follows its top-up -----------------------------------------------------------------------

def topup_settled(session: Session, topup_id: int, *, policy: AutoTopupPolicy) -> AutoTopupAttempt | None:
    """The hook for ``credit_topup`` / ``mark_failed`` (their follow-up ``AUTO_TOPUP_SETTLED``): bring the
    attempt of an automatic top-up in line with it. Does nothing for other top-ups."""
    attempt_id = session.scalar(select(AutoTopupAttempt.id).where(AutoTopupAttempt.topup_id == topup_id))
    return None if attempt_id is None else settle_attempt(session, attempt_id, policy=policy)


def _out_of_line():
    """Attempts whose top-up has moved on without them (e.g. SEPA settled by a webhook)."""
    return select(AutoTopupAttempt.id, AutoTopupAttempt.company_id).join(
        Topup, Topup.id == AutoTopupAttempt.topup_id).where(or_(
            and_(AutoTopupAttempt.status.in_(IN_FLIGHT_AUTO_TOPUP),
                 Topup.status.in_((TopupStatus.CREDITED.value, TopupStatus.FAILED.value))),
            and_(AutoTopupAttempt.status == AutoTopupStatus.PENDING.value, Topup.status == TopupStatus.PROCESSING.value),
            and_(AutoTopupAttempt.status != AutoTopupStatus.SUCCEEDED.value, Topup.status == TopupStatus.CREDITED.value),
        ))


def reconcile(session: Session, company_id: int, *, policy: AutoTopupPolicy) -> int:
    """Settle every attempt of the company whose top-up has moved on; the caller commits."""
    ids = session.scalars(_out_of_line().where(AutoTopupAttempt.company_id == company_id)).all()
    for attempt_id in ids:
        settle_attempt(session, attempt_id, policy=policy)
    return len(ids)


def companies_out_of_line(session: Session) -> list[int]:
    """The companies with an attempt to settle: for the periodic catch-up, one unit of work each."""
    return sorted(set(session.scalars(select(_out_of_line().subquery().c.company_id))))


def settle_attempt(session: Session, attempt_id: int, *, policy: AutoTopupPolicy) -> AutoTopupAttempt:
    attempt = session.get(AutoTopupAttempt, attempt_id, populate_existing=True)
    topup = session.get(Topup, attempt.topup_id, populate_existing=True) if attempt.topup_id else None
    if topup is None:
        return attempt
    now = utcnow()
    if topup.status == TopupStatus.CREDITED.value:
        if _claim(session, attempt.id, AutoTopupStatus.SUCCEEDED, exclude=(AutoTopupStatus.SUCCEEDED.value,),
                  reason=None, decline_code=None, message=None, finished_at=now):
            session.execute(update(PrepaidBalance).where(PrepaidBalance.company_id == attempt.company_id)
                            .values(auto_topup_consecutive_failures=0))
            _email(session, attempt.company_id, EmailKind.AUTO_TOPUP_SUCCEEDED, f"auto-topup-succeeded:{attempt.id}",
                   {"amount": topup.amount, "bonus": topup.bonus_amount, "balance": _balance(session, attempt.company_id),
                    "topup_id": topup.id})
    elif topup.status == TopupStatus.PROCESSING.value:
        _claim(session, attempt.id, AutoTopupStatus.PROCESSING, only=(AutoTopupStatus.PENDING.value,))
    elif topup.status == TopupStatus.FAILED.value and topup.failure_code == AUTHENTICATION_REQUIRED:
        if _claim(session, attempt.id, AutoTopupStatus.ACTION_REQUIRED, only=IN_FLIGHT_AUTO_TOPUP,
                  reason=AUTHENTICATION_REQUIRED, decline_code=topup.decline_code, message=topup.failure_message,
                  finished_at=now):
            company = session.get(Company, attempt.company_id)
            _email(session, attempt.company_id, EmailKind.AUTO_TOPUP_ACTION_REQUIRED,
                   f"auto-topup-action-required:{attempt.id}",
                   {"amount": attempt.amount, "action_url": action_url(policy, attempt.amount, company.language)})
    elif topup.status == TopupStatus.FAILED.value:
        if _claim(session, attempt.id, AutoTopupStatus.FAILED, only=IN_FLIGHT_AUTO_TOPUP,
                  reason=topup.failure_code, decline_code=topup.decline_code, message=topup.failure_message,
                  finished_at=now):
            _record_failure(session, attempt, topup)
    session.expire_all()
    return session.get(AutoTopupAttempt, attempt_id, populate_existing=True)


def _claim(session: Session, attempt_id: int, to: AutoTopupStatus, *, only: tuple[str, ...] = (),
           exclude: tuple[str, ...] = (), **values) -> bool:
    """Move the attempt once: only the UPDATE that finds it in an allowed status goes on to count and email."""
    statement = update(AutoTopupAttempt).where(AutoTopupAttempt.id == attempt_id)
    if only:
        statement = statement.where(AutoTopupAttempt.status.in_(only))
    if exclude:
        statement = statement.where(AutoTopupAttempt.status.not_in(exclude))
    return bool(session.execute(statement.values(status=to.value, **values)).rowcount)


def _record_failure(session: Session, attempt: AutoTopupAttempt, topup: Topup) -> None:
    failures = session.execute(
        update(PrepaidBalance).where(PrepaidBalance.company_id == attempt.company_id)
        .values(auto_topup_consecutive_failures=PrepaidBalance.auto_topup_consecutive_failures + 1)
        .returning(PrepaidBalance.auto_topup_consecutive_failures)
    ).scalar_one()
    switched_off = failures >= MAX_CONSECUTIVE_FAILURES and bool(session.execute(
        update(PrepaidBalance).where(PrepaidBalance.company_id == attempt.company_id,
                                     PrepaidBalance.auto_topup_enabled.is_(True))
        .values(auto_topup_enabled=False)
    ).rowcount)
    _email(session, attempt.company_id, EmailKind.AUTO_TOPUP_FAILED, f"auto-topup-failed:{attempt.id}", {
        "amount": attempt.amount, "failure_code": topup.failure_code, "decline_code": topup.decline_code,
        "consecutive_failures": failures, "balance": _balance(session, attempt.company_id),
    })
    if switched_off:
        log.info("auto top-up of company %s switched off after %s failed payments", attempt.company_id, failures)
        _email(session, attempt.company_id, EmailKind.AUTO_TOPUP_DISABLED, f"auto-topup-disabled:{attempt.id}",
               {"failures": failures})


# -- reading ---------------------------------------------------------------------------------------------

def attempt_history(session: Session, company_id: int, limit: int = HISTORY_LENGTH) -> list[tuple[AutoTopupAttempt, Topup | None]]:
    """The company's attempts, newest first, each with its top-up (for the bonus)."""
    rows = session.execute(
        select(AutoTopupAttempt, Topup).outerjoin(Topup, Topup.id == AutoTopupAttempt.topup_id)
        .where(AutoTopupAttempt.company_id == company_id)
        .order_by(AutoTopupAttempt.created_at.desc(), AutoTopupAttempt.id.desc()).limit(limit)
    ).all()
    return [(attempt, topup) for attempt, topup in rows]


def switched_off_after_failures(session: Session, company_id: int) -> bool:
    account = session.get(PrepaidBalance, company_id)
    return not account.auto_topup_enabled and account.auto_topup_consecutive_failures >= MAX_CONSECUTIVE_FAILURES


def action_url(policy: AutoTopupPolicy, amount: int, language: str = "de") -> str:
    """Where the customer completes a payment the bank wants confirmed: a Checkout top-up of the amount."""
    return f"{policy.portal_base_url}/business/billing/topup?amount={plain_amount(amount, language)}"


# -- helpers -----------------------------------------------------------------------------------------------

def _balance(session: Session, company_id: int) -> int:
    return session.get(PrepaidBalance, company_id, populate_existing=True).balance


def _email(session: Session, company_id: int, kind: EmailKind, dedupe_key: str, context: dict) -> None:
    queue_email(session, company_id=company_id, kind=kind, dedupe_key=dedupe_key, context=context)


@dataclass(frozen=True)
class AutoTopupOverview:
    """What the settings page shows (as stored: reading it changes nothing)."""

    settings: AutoTopupSettings
    history: list[tuple[AutoTopupAttempt, Topup | None]]
    awaiting_customer: AutoTopupAttempt | None
    switched_off_after_failures: bool
    globally_enabled: bool

    @property
    def in_flight(self) -> bool:
        return any(attempt.status in IN_FLIGHT_AUTO_TOPUP for attempt, _topup in self.history)


def overview(session: Session, company_id: int, *, policy: AutoTopupPolicy) -> AutoTopupOverview:
    return AutoTopupOverview(
        settings=current_settings(session, company_id),
        history=attempt_history(session, company_id),
        awaiting_customer=awaiting_customer(session, company_id),
        switched_off_after_failures=switched_off_after_failures(session, company_id),
        globally_enabled=policy.enabled,
    )
