"""Disputes: a card chargeback (Stripe's dispute test card), a SEPA Direct Debit return, and their
outcome, decided as in Stripe's test mode by the evidence submitted.

- A payment with card 4000 0000 0000 0259 succeeds, then the cardholder disputes it as fraudulent:
  `charge.dispute.created` and `charge.dispute.funds_withdrawn`, status `needs_response`.
- A settled SEPA debit from IBAN DE35 3704 0044 0532 0130 02 is returned by the bank (or any settled
  payment, through `StripeSandbox.dispute_payment`): a SEPA return cannot be contested, so the dispute
  is `lost` from the start (`created`, `funds_withdrawn`, `closed`).
- Updating a dispute with evidence whose `uncategorized_text` is `winning_evidence` closes it as won
  (`updated`, `closed`, `funds_reinstated`), `losing_evidence` as lost (`updated`, `closed`); other
  evidence leaves it `under_review`. Closing a dispute (accepting it) makes it lost.

Every function here runs inside `sandbox.transaction()`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import objects
from .errors import invalid_request
from .store import new_id

if TYPE_CHECKING:
    from .sandbox import StripeSandbox

WINNING_EVIDENCE = "winning_evidence"
LOSING_EVIDENCE = "losing_evidence"
EVIDENCE_DAYS = 7
CLOSED = ("won", "lost")


def open_dispute(sb: "StripeSandbox", charge: dict, reason: str) -> dict:
    """The cardholder's bank takes the charge's money back; the merchant may answer with evidence."""
    dispute = _new_dispute(sb, charge, reason, "needs_response")
    sb.emit("charge.dispute.created", dispute)
    sb.emit("charge.dispute.funds_withdrawn", dispute)
    return dispute


def return_sepa_debit(sb: "StripeSandbox", charge: dict, reason: str = "general") -> dict:
    """The debtor's bank returns a settled SEPA debit: a dispute that is lost from the start."""
    dispute = _new_dispute(sb, charge, reason, "lost")
    sb.emit("charge.dispute.created", dispute)
    sb.emit("charge.dispute.funds_withdrawn", dispute)
    sb.emit("charge.dispute.closed", dispute)
    return dispute


def _new_dispute(sb: "StripeSandbox", charge: dict, reason: str, status: str) -> dict:
    if charge["status"] != "succeeded":
        raise invalid_request(f"Charge {charge['id']} has not succeeded and cannot be disputed.", "charge")
    if charge["disputed"]:
        raise invalid_request(f"Charge {charge['id']} has already been disputed.", "charge", "charge_disputed")
    details = charge["payment_method_details"]
    dispute = objects.dispute(
        sb.fixtures, id=new_id("dp"), created=sb.now(), amount=charge["amount"] - charge["amount_refunded"],
        charge=charge["id"], currency=charge["currency"], payment_intent=charge["payment_intent"], reason=reason,
        status=status, due_by=sb.now() + EVIDENCE_DAYS * 86400,
        card=details.get("card") if details.get("type") == "card" else None,
    )
    sb.put(dispute)
    charge["disputed"] = True
    return dispute


def submit_evidence(sb: "StripeSandbox", dispute: dict, evidence: dict) -> dict:
    """Stripe's test mode decides a dispute by the evidence text (see the module doc)."""
    if dispute["status"] in CLOSED:
        raise invalid_request(f"This dispute is already closed ({dispute['status']}).", "evidence")
    dispute["evidence"].update({key: value for key, value in evidence.items() if key in dispute["evidence"]})
    details = dispute["evidence_details"]
    details.update(has_evidence=True, submission_count=details["submission_count"] + 1)
    text = evidence.get("uncategorized_text")
    dispute["status"] = "under_review"
    sb.emit("charge.dispute.updated", dispute)
    if text == WINNING_EVIDENCE:
        _close(sb, dispute, "won")
        sb.emit("charge.dispute.funds_reinstated", dispute)
    elif text == LOSING_EVIDENCE:
        _close(sb, dispute, "lost")
    return dispute


def accept(sb: "StripeSandbox", dispute: dict) -> dict:
    """The merchant accepts the dispute (Stripe's "close"): it is lost."""
    if dispute["status"] not in CLOSED:
        _close(sb, dispute, "lost")
    return dispute


def _close(sb: "StripeSandbox", dispute: dict, status: str) -> None:
    dispute["status"] = status
    sb.emit("charge.dispute.closed", dispute)
