"""Customer emails: recorded once, rendered in the company's language, sent over SMTP or to an outbox.

Two steps, so that a message is never lost and never sent twice on purpose:

1. :func:`record_email` writes a ``sent_emails`` row (status ``queued``) once per dedupe key. The
   database's UNIQUE constraint decides, with ``INSERT ... ON CONFLICT DO NOTHING``, so a second or a
   concurrent call for the same event is harmless and raises nothing.
2. :func:`deliver` claims the row with one conditional ``UPDATE`` (not yet ``sent``; it counts the
   attempt and holds the row's write lock until the commit), renders it in the row's language, hands
   it to a transport and marks it ``sent``. A transport error marks it ``failed`` and is re-raised so
   the job queue retries; ``failed`` rows are delivered again, ``sent`` rows never.

Nothing here commits. The claim, the send and the outcome are one unit of work, committed by the
caller (the job) once the message is handed over: the claim's row lock keeps a concurrent delivery
waiting until then. On a failure the caller commits the ``failed`` record, then re-raises.

SMTP itself is at-least-once: if the process dies after the server accepted a message but before
the commit, the retry sends it again. Such a duplicate carries the same ``Message-ID`` (derived from
the dedupe key), so mail clients and support can recognise it.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import os
import re
import smtplib
import ssl
import tempfile
import textwrap
from collections.abc import Mapping
from datetime import timezone
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.clock import utcnow
from core.followups import Followup, request_followup
from core.i18n import DEFAULT_LANGUAGE, LANGUAGES, N_, payment_failure_message
from core.schema import Company, EmailStatus, Invoice, Role, SentEmail, User, insert_or_ignore
from core.money import format_money
from core.rendering import Renderer

logger = logging.getLogger(__name__)

SMTP_TIMEOUT_SECONDS = 15.0

# Portal pages the emails link to (absolute links: PORTAL_BASE_URL + path).
PORTAL_PATHS = {
    "dashboard": "/business/billing",
    "topup": "/business/billing/topup",
    "payment_methods": "/business/billing/payment-methods",
    "auto_topup": "/business/billing/auto-topup",
    "invoices": "/business/billing/invoices",
}

# Headers that let the outbox name its files and let support find the row of a forwarded message.
KIND_HEADER = "X-Billing-Email-Kind"
ID_HEADER = "X-Billing-Email-Id"


class EmailKind(str, enum.Enum):
    TOPUP_RECEIPT = "topup_receipt"
    PAYMENT_FAILED = "payment_failed"
    LOW_BALANCE = "low_balance"
    AUTO_TOPUP_SUCCEEDED = "auto_topup_succeeded"
    AUTO_TOPUP_FAILED = "auto_topup_failed"
    AUTO_TOPUP_ACTION_REQUIRED = "auto_topup_action_required"
    AUTO_TOPUP_DISABLED = "auto_topup_disabled"
    AUTO_TOPUP_LIMIT_REACHED = "auto_topup_limit_reached"
    USER_INVITE = "user_invite"
    PAYMENT_DISPUTED = "payment_disputed"


SUBJECTS = {
    EmailKind.TOPUP_RECEIPT: N_("Receipt for your top-up of %(amount)s"),
    EmailKind.PAYMENT_FAILED: N_("Payment Failed – Action Required"),
    EmailKind.LOW_BALANCE: N_("Your prepaid balance is low"),
    EmailKind.AUTO_TOPUP_SUCCEEDED: N_("Automatic top-up of %(amount)s succeeded"),
    EmailKind.AUTO_TOPUP_FAILED: N_("Automatic top-up of %(amount)s failed"),
    EmailKind.AUTO_TOPUP_ACTION_REQUIRED: N_("Automatic top-up: please confirm the payment"),
    EmailKind.AUTO_TOPUP_DISABLED: N_("Automatic top-up has been turned off"),
    EmailKind.AUTO_TOPUP_LIMIT_REACHED: N_("Automatic top-up paused: limit reached"),
    EmailKind.USER_INVITE: N_("Your access to the billing portal"),
    EmailKind.PAYMENT_DISPUTED: N_("A payment of %(amount)s was disputed"),
}

# Context keys a message cannot be rendered without; checked when it is recorded, not when it is sent.
REQUIRED_CONTEXT = {
    EmailKind.TOPUP_RECEIPT: ("amount", "balance"),
    EmailKind.PAYMENT_FAILED: ("amount",),
    EmailKind.LOW_BALANCE: ("balance", "threshold"),
    EmailKind.AUTO_TOPUP_SUCCEEDED: ("amount", "balance"),
    EmailKind.AUTO_TOPUP_FAILED: ("amount",),
    EmailKind.AUTO_TOPUP_ACTION_REQUIRED: ("amount", "action_url"),
    EmailKind.AUTO_TOPUP_DISABLED: (),
    EmailKind.AUTO_TOPUP_LIMIT_REACHED: ("amount", "limit_reason"),
    EmailKind.USER_INVITE: ("set_password_url",),
    EmailKind.PAYMENT_DISPUTED: ("amount", "debited", "balance", "topup_id"),
}

_MONEY_KEYS = ("amount", "bonus", "balance", "threshold", "debited")


class Transport(Protocol):
    def send(self, message: EmailMessage) -> None: ...


@dataclass(frozen=True)
class MailSettings:
    """What rendering a message needs besides its row: the templates, where links point, the sender."""

    renderer: Renderer
    portal_base_url: str
    mail_from: str


# --- recording ------------------------------------------------------------------------------------


def default_recipient(session: Session, company_id: int) -> str | None:
    """The company's first active company admin (lowest id), or None."""
    return session.scalar(
        select(User.email)
        .where(User.company_id == company_id, User.role == Role.COMPANY_ADMIN.value, User.active.is_(True))
        .order_by(User.id)
        .limit(1)
    )


def record_email(session: Session, *, company_id: int, kind: EmailKind, dedupe_key: str, context: dict,
                 invoice_id: int | None = None, recipient: str | None = None,
                 send: bool = False) -> SentEmail | None:
    """Record a message to send, once per dedupe key; with ``send``, a new message is sent once the
    caller has committed (the follow-up ``SEND_EMAIL``).

    Returns the new row, or None when a row with this key exists already (also when another
    transaction inserted it concurrently: nothing is raised). Returns None as well, with a warning in
    the log, when no recipient was given and the company has no active company admin to write to.
    The recipient defaults to that admin; the language is the company's.
    """
    kind = EmailKind(kind)
    missing = [key for key in REQUIRED_CONTEXT[kind] if context.get(key) is None]
    if missing:
        raise ValueError(f"{kind.value} email needs context keys {missing}")
    if kind is EmailKind.AUTO_TOPUP_ACTION_REQUIRED and not re.match(r"https?://", str(context["action_url"])):
        raise ValueError("action_url must be an http(s) URL")
    if not dedupe_key or len(dedupe_key) > SentEmail.dedupe_key.type.length:
        raise ValueError("dedupe_key must be 1 to 200 characters")
    company = session.get(Company, company_id)
    if company is None:
        raise ValueError(f"no company {company_id}")
    recipient = recipient or default_recipient(session, company_id)
    if not recipient:
        logger.warning("No %s email for company %s (%s): it has no active company admin", kind.value, company_id,
                       dedupe_key)
        return None
    language = company.language if company.language in LANGUAGES else DEFAULT_LANGUAGE
    values = {
        "company_id": company_id,
        "kind": kind.value,
        "recipient": recipient,
        "language": language,
        "subject": "",
        "dedupe_key": dedupe_key,
        "context": dict(context),
        "invoice_id": invoice_id,
        "status": EmailStatus.QUEUED.value,
        "attempts": 0,
        "created_at": utcnow(),
    }
    new_id = session.execute(_insert_once(session, values)).scalar()
    if new_id is not None and send:
        request_followup(session, Followup.SEND_EMAIL, new_id)
    return None if new_id is None else session.get(SentEmail, new_id)


def queue_email(session: Session, **fields) -> SentEmail | None:
    """Record a message (see :func:`record_email`) and have it sent once that is committed."""
    return record_email(session, send=True, **fields)


def _insert_once(session: Session, values: dict[str, Any]):
    """INSERT ... ON CONFLICT DO NOTHING RETURNING id: the id, or no row for a duplicate key."""
    return insert_or_ignore(session, SentEmail).values(**values).returning(SentEmail.id)


# --- delivery -------------------------------------------------------------------------------------


def deliver(session: Session, email_id: int, transport: Transport, settings: MailSettings) -> bool:
    """Send one recorded message unless it was sent already; True when it was sent now.

    The caller commits. On any error while rendering or sending, the row is marked ``failed`` with
    the error text and the error re-raised: the caller commits that record (the counted attempt and
    the reason), then re-raises so the job queue retries.
    """
    claimed = session.execute(
        update(SentEmail)
        .where(SentEmail.id == email_id, SentEmail.status != EmailStatus.SENT.value)
        .values(attempts=SentEmail.attempts + 1)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not claimed:
        if session.get(SentEmail, email_id) is None:
            logger.warning("Email %s does not exist; nothing to send", email_id)
        return False
    row = session.get(SentEmail, email_id, populate_existing=True)
    try:
        message = build_message(session, row, settings)
        transport.send(message)
    except Exception as error:
        _mark_failed(row, error)
        raise
    row.status = EmailStatus.SENT.value
    row.subject = str(message["Subject"])[:300]
    row.sent_at = utcnow()
    row.error = None
    logger.info("Email %s (%s) sent to %s", row.id, row.kind, row.recipient)
    return True


def _mark_failed(row: SentEmail, error: Exception) -> None:
    """Keep the counted attempt and the reason (the caller commits them)."""
    row.status = EmailStatus.FAILED.value
    row.error = f"{type(error).__name__}: {error}"[:2000]
    logger.warning("Email %s (%s to %s) failed, attempt %s: %s", row.id, row.kind, row.recipient, row.attempts,
                   row.error)


def build_message(session: Session, row: SentEmail, settings: MailSettings) -> EmailMessage:
    """The complete message for a recorded row: subject, text and HTML in its language, PDF for receipts."""
    kind = EmailKind(row.kind)
    company = session.get(Company, row.company_id) if row.company_id else None
    invoice = session.get(Invoice, row.invoice_id) if row.invoice_id else None
    language = row.language or DEFAULT_LANGUAGE
    renderer, mail_from = settings.renderer, settings.mail_from

    context = _template_context(row, kind, company, invoice, settings)
    subject = render_subject(kind, row.context or {}, language, renderer)
    context["subject"] = subject
    text = _tidy_text(renderer.render(f"emails/{kind.value}.txt", language, **context))
    html = renderer.render(f"emails/{kind.value}.html", language, **context)
    attachment_name = renderer.gettext(language, N_("Invoice-%(number)s.pdf"), number=invoice.number) if invoice else None

    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = mail_from
    message["To"] = row.recipient
    message["Date"] = format_datetime(utcnow().replace(tzinfo=timezone.utc))
    message["Message-ID"] = message_id(row.dedupe_key, mail_from)
    message["Auto-Submitted"] = "auto-generated"
    message[KIND_HEADER] = kind.value
    message[ID_HEADER] = str(row.id)
    message.set_content(text, cte="quoted-printable")
    message.add_alternative(html, subtype="html", cte="quoted-printable")
    if invoice is not None and invoice.pdf:
        message.add_attachment(invoice.pdf, maintype="application", subtype="pdf", filename=attachment_name)
    message["Content-Language"] = row.language  # after the body: set_content() drops Content-* headers
    return message


def render_subject(kind: EmailKind, context: Mapping, language: str, renderer: Renderer) -> str:
    """The subject in ``language``, its amounts formatted for it."""
    amounts = {key: format_money(int(context[key]), language) for key in _MONEY_KEYS if context.get(key) is not None}
    return renderer.gettext(language, SUBJECTS[EmailKind(kind)], **amounts)


def message_id(dedupe_key: str, mail_from: str) -> str:
    """A Message-ID that is the same for every delivery of one recorded message."""
    digest = hashlib.sha256(dedupe_key.encode("utf-8")).hexdigest()[:40]
    domain = parseaddr(mail_from)[1].rpartition("@")[2] or "localhost"
    return f"<billing.{digest}@{domain}>"


def _template_context(row: SentEmail, kind: EmailKind, company: Company | None, invoice: Invoice | None,
                      settings: MailSettings) -> dict[str, Any]:
    values = dict(row.context or {})
    context: dict[str, Any] = {
        **values,
        "kind": kind.value,
        "language": row.language,
        "recipient": row.recipient,
        "company_name": company.name if company else "",
        "links": {name: settings.portal_base_url + path for name, path in PORTAL_PATHS.items()},
        "invoice_number": values.get("invoice_number") or (invoice.number if invoice else None),
        "has_attachment": bool(invoice is not None and invoice.pdf),
        "bonus": values.get("bonus") or 0,
    }
    if kind in (EmailKind.PAYMENT_FAILED, EmailKind.AUTO_TOPUP_FAILED):
        reason = payment_failure_message(values.get("failure_code"), values.get("decline_code"))
        context["reason"] = settings.renderer.gettext(row.language or DEFAULT_LANGUAGE, reason)
    return context


def _tidy_text(text: str) -> str:
    """Plain text as mail clients like it: no trailing blanks, one blank line between paragraphs,
    paragraphs wrapped at 76 characters (links and other long words are never broken)."""
    lines = []
    for line in text.splitlines():
        line = line.rstrip() if line != "-- " else line  # "-- " keeps its blank: the signature separator
        if len(line) > 76:
            indent = re.match(r"\s*(?:[-•*] )?", line).group(0)
            lines.extend(textwrap.wrap(line, 76, subsequent_indent=" " * len(indent), break_long_words=False,
                                       break_on_hyphens=False))
        else:
            lines.append(line)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


# --- transports -----------------------------------------------------------------------------------


class SmtpTransport:
    """Sends over SMTP: STARTTLS when asked (certificate verified), login when a user is set."""

    def __init__(self, host: str, port: int = 587, user: str | None = None, password: str | None = None,
                 starttls: bool = True, timeout: float = SMTP_TIMEOUT_SECONDS):  # not money
        self.host, self.port, self.user, self.password = host, port, user, password
        self.starttls, self.timeout = starttls, timeout

    def send(self, message: EmailMessage) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self.user:
                smtp.login(self.user, self.password or "")
            smtp.send_message(message)

    def __repr__(self) -> str:  # never shows the password
        return f"SmtpTransport({self.host}:{self.port}, starttls={self.starttls}, user={self.user!r})"


class OutboxTransport:
    """The embedded default: each message becomes ``<outbox>/<utc-timestamp>-<kind>-<id>.eml``."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)

    def send(self, message: EmailMessage) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        kind = _safe_name(message.get(KIND_HEADER) or "email")
        ident = _safe_name(message.get(ID_HEADER) or hashlib.sha256(str(message["Message-ID"]).encode()).hexdigest()[:12])
        stamp = utcnow().strftime("%Y%m%dT%H%M%S%fZ")
        path = self.directory / f"{stamp}-{kind}-{ident}.eml"
        # Written under a temporary name and renamed, so nobody ever sees half a message.
        handle, temporary = tempfile.mkstemp(dir=self.directory, prefix=".", suffix=".eml.tmp")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(message.as_bytes())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        logger.info("Email to %s written to %s", message["To"], path)

    def __repr__(self) -> str:
        return f"OutboxTransport({self.directory})"


def _safe_name(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", str(value))[:60]


def transport_from_config(config: Mapping) -> Transport:
    """SMTP when SMTP_HOST is set, else the outbox folder (see app.config)."""
    if config["SMTP_HOST"]:
        return SmtpTransport(
            config["SMTP_HOST"], config["SMTP_PORT"], user=config["SMTP_USER"], password=config["SMTP_PASSWORD"],
            starttls=config["SMTP_STARTTLS"],
            timeout=float(config.get("SMTP_TIMEOUT", SMTP_TIMEOUT_SECONDS)),  # not money: seconds
        )
    return OutboxTransport(config["OUTBOX_DIR"])
