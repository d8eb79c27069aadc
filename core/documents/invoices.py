"""Invoices for credited top-ups and credit notes for their refunds, as PDFs that never change.

The number is taken from a per-kind-and-year counter row whose UPDATE locks it, in the same
transaction that stores the invoice with its rendered PDF: a crash or a rollback gives the number
back, so numbers have no gaps and no duplicates however many are issued at once.

Nothing here commits: issuing a document is one unit of work, committed by the caller (the job).
The year's counter row is created in that same unit (``INSERT ... ON CONFLICT DO NOTHING``): a
concurrent first issuer of the year waits on that uncommitted row, then finds it and takes the next
number — or, if the first one rolled back, creates it itself. A concurrent second issue of the same
document fails on its unique key with an IntegrityError: the caller rolls back (giving the number
back) and asks again, which returns the document the other one issued.
"""

from __future__ import annotations

import atexit
import gc
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from sqlalchemy import Row, Select, bindparam, select, update
from sqlalchemy.orm import Session

from core.clock import utcnow
from core.schema import (
    Company, DocumentKind, DocumentSequence, Invoice, Topup, TopupRefund, TopupStatus, insert_or_ignore,
)
from core.money import UNITS_PER_CENT, divide_half_up
from core.documents.vat import VatPolicy, VatSplit, split_topup
from core.ledger.history import Cursor, Direction, keyset_rows, keyset_statement
from core.rendering import Renderer

if TYPE_CHECKING:
    from weasyprint.text.fonts import FontConfiguration

NUMBER_PREFIX = {DocumentKind.INVOICE: "", DocumentKind.CREDIT_NOTE: "GS-", DocumentKind.CREDIT_NOTE_CANCELLATION: "ST-"}


class InvoiceError(Exception):
    pass


@dataclass(frozen=True)
class Seller:
    name: str
    address_lines: tuple[str, ...]
    vat_id: str
    tax_number: str
    email: str

    @classmethod
    def from_config(cls, config) -> Seller:
        return cls(config["SELLER_NAME"], tuple(config["SELLER_ADDRESS"].splitlines()), config["SELLER_VAT_ID"],
                   config["SELLER_TAX_NUMBER"], config["SELLER_EMAIL"])


_fonts: FontConfiguration | None = None


def _font_configuration() -> FontConfiguration:
    """One per process (a new one per document keeps growing a worker's memory), made on first use and
    released at exit while the libraries behind it still exist (at interpreter teardown it segfaults)."""
    global _fonts
    if _fonts is None:
        from weasyprint.text.fonts import FontConfiguration  # WeasyPrint takes ~1 s to import: only PDF paths pay

        _fonts = FontConfiguration()
        atexit.register(_release_fonts)
    return _fonts


def prepare_pdf_rendering() -> None:
    """Import WeasyPrint and set up its fonts now (a worker does it once before it forks)."""
    _font_configuration()


def _release_fonts() -> None:
    global _fonts
    _fonts = None
    gc.collect()


def render_pdf(renderer: Renderer, template: str, language: str, **context) -> bytes:
    """A template rendered in ``language`` and turned into a PDF."""
    from weasyprint import HTML  # imported on first PDF, not at every process's start-up (~1 s of CPU)

    html = renderer.render(template, language, **context)
    return HTML(string=html).write_pdf(font_config=_font_configuration())


def _ensure_sequence(session: Session, kind: DocumentKind, year: int) -> None:
    session.execute(insert_or_ignore(session, DocumentSequence).values(kind=kind.value, year=year, last_number=0))


def _take_number(session: Session, kind: DocumentKind, year: int) -> tuple[int, str]:
    """The next number of the series; the row stays locked until the caller commits or rolls back."""
    sequence = session.execute(
        update(DocumentSequence).where(DocumentSequence.kind == kind.value, DocumentSequence.year == year)
        .values(last_number=DocumentSequence.last_number + 1).returning(DocumentSequence.last_number)
    ).scalar_one()
    return sequence, f"{NUMBER_PREFIX[kind]}{year}-{sequence:06d}"


def _issue(session: Session, kind: DocumentKind, template: str, company: Company, seller: Seller,
           renderer: Renderer, fields: dict, **context) -> Invoice:
    now = utcnow()
    _ensure_sequence(session, kind, now.year)
    sequence, number = _take_number(session, kind, now.year)
    pdf = render_pdf(renderer, template, company.language, company=company, seller=seller, number=number, issued_at=now,
                     **context)
    invoice = Invoice(kind=kind.value, number=number, year=now.year, sequence=sequence, company_id=company.id,
                      language=company.language, pdf=pdf, issued_at=now, **fields)
    session.add(invoice)
    session.flush()  # a concurrent issue of the same document fails here, on its unique key
    return invoice


def issue_topup_invoice(session: Session, topup_id: int, seller: Seller, vat: VatPolicy,
                        renderer: Renderer) -> Invoice:
    """The invoice of a credited top-up, issued once (a second call returns the first); raises
    IntegrityError when issued concurrently (see the module doc)."""
    existing = session.scalar(select(Invoice).where(Invoice.topup_id == topup_id))
    if existing is not None:
        return existing
    topup = session.get(Topup, topup_id)
    if topup is None or topup.status != TopupStatus.CREDITED.value:
        raise InvoiceError(f"top-up {topup_id} is not credited")
    split = split_topup(topup.amount, vat)
    company = session.get(Company, topup.company_id)
    return _issue(
        session, DocumentKind.INVOICE, "documents/invoice.html", company, seller, renderer,
        _amount_fields(split, topup_id=topup.id, bonus_cents=_whole_cents(topup.bonus_amount)),
        topup=topup, split=split, bonus_units=topup.bonus_amount,
    )


def issue_credit_note(session: Session, topup_refund_id: int, seller: Seller, vat: VatPolicy,
                      renderer: Renderer) -> Invoice:
    """The credit note of a refunded (part of a) top-up, referring to its invoice (issued first if it
    was not); issued once, raising IntegrityError when issued concurrently (see the module doc)."""
    existing = session.scalar(select(Invoice).where(Invoice.topup_refund_id == topup_refund_id))
    if existing is not None:
        return existing
    refund = session.get(TopupRefund, topup_refund_id)
    topup = session.get(Topup, refund.topup_id)
    original = issue_topup_invoice(session, topup.id, seller, vat, renderer)
    split = _refund_split(refund.refunded_cents, original)
    company = session.get(Company, topup.company_id)
    return _issue(
        session, DocumentKind.CREDIT_NOTE, "documents/credit_note.html", company, seller, renderer,
        _amount_fields(split, topup_refund_id=refund.id, bonus_cents=_whole_cents(refund.bonus_reversed)),
        topup=topup, refund=refund, original=original, split=split, bonus_units=refund.bonus_reversed,
    )


def issue_credit_note_cancellation(session: Session, topup_refund_id: int, seller: Seller, vat: VatPolicy,
                                   renderer: Renderer) -> Invoice:
    """The cancellation of the credit note of a refund that failed after it was issued (see
    core.payments.refunds for why a new document, not a changed one): the same amounts, referring to
    the credit note (issued first if it was not). Issued once, raising IntegrityError when issued
    concurrently (see the module doc)."""
    refund = session.get(TopupRefund, topup_refund_id)
    if refund is None or refund.given_back_at is None or refund.refunded_cents <= 0:
        raise InvoiceError(f"refund {topup_refund_id} was not given back after a debit")
    credit_note = issue_credit_note(session, topup_refund_id, seller, vat, renderer)
    existing = session.scalar(select(Invoice).where(Invoice.cancels_invoice_id == credit_note.id))
    if existing is not None:
        return existing
    topup = session.get(Topup, refund.topup_id)
    split = VatSplit(credit_note.net_cents, credit_note.vat_cents, credit_note.gross_cents,
                     credit_note.vat_rate_basis_points)
    company = session.get(Company, topup.company_id)
    return _issue(
        session, DocumentKind.CREDIT_NOTE_CANCELLATION, "documents/credit_note_cancellation.html", company, seller,
        renderer, _amount_fields(split, cancels_invoice_id=credit_note.id, bonus_cents=credit_note.bonus_cents),
        topup=topup, refund=refund, credit_note=credit_note, split=split, bonus_units=refund.bonus_reversed,
    )


def _refund_split(refunded_cents: int, original: Invoice) -> VatSplit:
    """The money paid back, with the original invoice's VAT in proportion (rounded half-up once)."""
    vat = divide_half_up(original.vat_cents * refunded_cents, original.gross_cents)
    return VatSplit(refunded_cents - vat, vat, refunded_cents, original.vat_rate_basis_points)


def _amount_fields(split: VatSplit, **extra) -> dict:
    return {"net_cents": split.net_cents, "vat_cents": split.vat_cents, "gross_cents": split.gross_cents,
            "vat_rate_basis_points": split.rate_basis_points, **extra}


def _whole_cents(units: int) -> int:
    return divide_half_up(units, UNITS_PER_CENT)


_INVOICE = Invoice.__table__.c
# What the lists show: never the PDF, which is read only for its download (tens of KB a document).
_LISTED = (_INVOICE.id, _INVOICE.kind, _INVOICE.number, _INVOICE.issued_at, _INVOICE.net_cents,
           _INVOICE.vat_cents, _INVOICE.gross_cents)


@dataclass(frozen=True)
class DocumentPage:
    documents: list[Row]  # the listed columns of Invoice, newest first
    older: Cursor | None  # pass as ``after`` for the next (older) page
    newer: Cursor | None  # pass as ``before`` for the previous (newer) page


@cache
def _documents_statement(direction: Direction) -> Select:
    query = select(*_LISTED).where(_INVOICE.company_id == bindparam("company_id"))
    return keyset_statement(query, (_INVOICE.issued_at, _INVOICE.id), direction)


def _position_of(document: Row) -> Cursor:
    return Cursor(document.issued_at, document.id)


def documents_page(session: Session, company_id: int, *, after: Cursor | None = None, before: Cursor | None = None,
                   limit: int = 50) -> DocumentPage:
    """The company's newest invoices and credit notes, or those older than ``after``, or newer than
    ``before``. A cursor is only a position: the query is always limited to the company."""
    rows, has_older, has_newer = keyset_rows(session, _documents_statement, {"company_id": company_id},
                                             after=after, before=before, limit=limit)
    return DocumentPage(rows, _position_of(rows[-1]) if has_older else None,
                        _position_of(rows[0]) if has_newer else None)


def company_document(session: Session, company_id: int, invoice_id: int) -> Invoice | None:
    """An invoice or credit note of this company; another company's id is simply not found."""
    invoice = session.get(Invoice, invoice_id)
    return invoice if invoice is not None and invoice.company_id == company_id else None
