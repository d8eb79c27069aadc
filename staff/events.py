"""Staff: stored Stripe events — list and filter, view a payload, replay one or all failed ones."""

from __future__ import annotations

from flask_babel import gettext as _
import json
from flask import abort, flash, request, url_for

from core.accounts.audit import record_action
from app.extensions import db
from core.schema import WebhookEvent, WebhookStatus
from app.inputs import query_choice, query_day, query_id
from app.web import redirect_to, render_page, staff_actor, staff_required, stripe_gateway
from core.backoffice.stripe_events import EventFilter, event_ledger_entries, event_types, list_events
from app.events import process_stored_event
from core.payments.webhooks import replayable_event_ids
from staff import bp


STATUSES = [status.value for status in WebhookStatus]


def _filters() -> EventFilter:
    return EventFilter(
        type=request.args.get("type", "").strip()[:100],
        status=query_choice("status", ["", *STATUSES]),
        company_id=query_id("company"),
        date_from=query_day("from"),
        date_to=query_day("to"),
    )


@bp.get("/stripe-events")
@staff_required()
def events():
    filters = _filters()
    return render_page("staff/events.html", "staff/partials/event_rows.html",
                       events=list_events(db.session, filters), filters=filters, statuses=STATUSES,
                       types=event_types(db.session), args=request.args)


@bp.get("/stripe-events/<id:event_id>")
@staff_required()
def event(event_id: int):
    row = db.session.get(WebhookEvent, event_id) or abort(404)
    payload = json.dumps(row.payload, indent=2, sort_keys=True, ensure_ascii=False)
    return render_page("staff/event_detail.html", "staff/partials/event_detail.html", event=row, payload=payload,
                       entries=event_ledger_entries(db.session, row))


@bp.post("/stripe-events/<id:event_id>/replay")
@staff_required()
def replay_event(event_id: int):
    row = db.session.get(WebhookEvent, event_id) or abort(404)
    before = {"status": row.status, "attempts": row.attempts}
    result = process_stored_event(db.session, stripe_gateway(), row.id)  # commits its steps
    record_action(db.session, staff_actor(), "webhook.replay", target_type="webhook_event", target_id=row.id,
                  company_id=result.company_id, before=before,
                  after={"status": result.status, "attempts": result.attempts, "error": result.error})
    db.session.commit()
    if result.status == WebhookStatus.FAILED.value:
        flash(_("The event failed again: %(error)s", error=result.error or ""), "error")
    else:
        flash(_("The event was replayed (%(status)s).", status=result.status), "success")
    return redirect_to(url_for("staff.event", event_id=row.id))


@bp.post("/stripe-events/replay-failed")
@staff_required()
def replay_all_failed():
    results = [process_stored_event(db.session, stripe_gateway(), row_id)  # each commits its steps
               for row_id in replayable_event_ids(db.session)]
    failed = sum(1 for r in results if r.status == WebhookStatus.FAILED.value)
    record_action(db.session, staff_actor(), "webhook.replay_failed", target_type="webhook_event", target_id="failed",
                  after={"replayed": [r.id for r in results], "still_failed": failed})
    db.session.commit()
    flash(_("%(count)s failed event(s) replayed, %(failed)s still failing.", count=len(results), failed=failed),
          "error" if failed else "success")
    return redirect_to(url_for("staff.events", status="failed"))
