"""The usage page: calls, minutes and cost of a period, a daily chart, the calls, a CSV export.

Thin views: read the filter form, ask core.calls.usage, format for the active language, render.
"""

from __future__ import annotations

from datetime import date, timezone
from decimal import Decimal

from babel import dates
from babel.numbers import format_decimal
from flask import Response, current_app, render_template, request, stream_with_context, url_for
from flask_babel import get_timezone, gettext as _, lazy_gettext as _l, ngettext
from flask_login import current_user

from app.charts import COMPACT, WIDE, ChartDay, ChartText, usage_chart
from core.clock import utcnow
from app.csv_export import Number, csv_chunks
from app.locale import active_language, money
from app.extensions import db
from core.money import UNITS_PER_EUR, format_amount_plain
from core.ledger.history import Cursor, InvalidCursor
from core.calls.usage import (
    InvalidRange, Period, UsageRange, UsageReport, calls_page, iter_calls, resolve_range, usage_report,
)
from app.web import company_user_required, render_page
from app.forms import UsageFilterForm
from portal import bp


PAGE_SIZE = 50
CALLS_TARGET = "usage-calls"  # the element id htmx names in HX-Target when only the call list pages

REFUND_STATUS_LABELS = {
    "none": _l("Not refunded"),
    "partial": _l("Partly refunded"),
    "full": _l("Refunded"),
}


@bp.app_template_filter("duration")
def duration(seconds: int | None) -> str:
    """A call length as m:ss, or h:mm:ss from an hour on (the same in every language)."""
    if seconds is None:
        return ""
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


@bp.get("/billing/usage")
@company_user_required
def usage():
    form = UsageFilterForm(request.args)
    usage_range, error = _read_range(form)
    after = before = None
    if error is None:
        try:
            after, before = Cursor.from_query(request.args, "after"), Cursor.from_query(request.args, "before")
        except InvalidCursor:
            error = _("This page link is not valid any more. Please start from the first page.")
    calls_only = bool(request.htmx) and request.headers.get("HX-Target") == CALLS_TARGET
    page = report = None
    if error is None:
        company_id = current_user.company_id
        page = calls_page(db.session, company_id, usage_range, after=after, before=before,
                          limit=current_app.config.get("USAGE_PAGE_SIZE", PAGE_SIZE))
        if not calls_only:
            report = usage_report(db.session, company_id, usage_range)
    context = dict(form=form, usage_range=usage_range, report=report, page=page, error=error,
                   query=_range_query(form, usage_range), refund_labels=_refund_labels())
    if report is not None:
        context.update(range_label=_range_label(usage_range), charts=_charts(report), zone=usage_range.zone)
    partial = "portal/partials/usage_calls.html" if calls_only else "portal/partials/usage_results.html"
    response = render_page("portal/usage.html", partial, status=400 if error else 200,
                           oob_filter=bool(request.htmx) and not calls_only and error is None, **context)
    if request.htmx and error is None:  # the address bar shows the applied range, not stale form fields
        position = {"after": request.args["after"]} if after else {"before": request.args["before"]} if before else {}
        response.headers["HX-Push-Url"] = url_for("portal.usage", **context["query"], **position)
    return response


@bp.get("/billing/usage.csv")
@company_user_required
def usage_csv():
    form = UsageFilterForm(request.args)
    usage_range, error = _read_range(form)
    if error is not None:
        return render_template("portal/usage.html", form=form, usage_range=None, report=None, page=None,
                               error=error, query={}, refund_labels=_refund_labels()), 400
    rows = iter_calls(db.session, current_user.company_id, usage_range)
    response = Response(stream_with_context(_csv_lines(rows, active_language(), usage_range.zone)),
                        mimetype="text/csv")
    filename = f"usage-{usage_range.first_day.isoformat()}-{usage_range.last_day.isoformat()}.csv"
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _today(zone) -> date:
    return utcnow().replace(tzinfo=timezone.utc).astimezone(zone).date()


def _read_range(form: UsageFilterForm) -> tuple[UsageRange | None, str | None]:
    if not form.validate():
        problems = "; ".join(f"{form[name].label.text}: {' '.join(map(str, errors))}"
                             for name, errors in form.errors.items())
        return None, _("Please check the filter: %(problems)s", problems=problems)
    zone = get_timezone()
    try:
        return resolve_range(form.chosen_period(), today=_today(zone), zone=zone,
                             start=form.start.data, end=form.end.data), None
    except InvalidRange as problem:
        return None, _("Please check the filter: %(problems)s", problems=str(form.RANGE_ERRORS[problem.reason]))


def _range_query(form: UsageFilterForm, usage_range: UsageRange | None) -> dict:
    """The chosen range as query parameters, for page links and the CSV export."""
    if usage_range is None:
        return {}
    if usage_range.period is Period.CUSTOM:
        return {"period": Period.CUSTOM.value, "start": usage_range.first_day.isoformat(),
                "end": usage_range.last_day.isoformat()}
    return {"period": usage_range.period.value}


def _refund_labels() -> dict[str, str]:
    return {key: str(label) for key, label in REFUND_STATUS_LABELS.items()}


def _range_label(usage_range: UsageRange) -> str:
    language = active_language()
    if usage_range.first_day == usage_range.last_day:
        return dates.format_date(usage_range.first_day, "long", locale=language)
    return dates.format_interval(usage_range.first_day, usage_range.last_day, "yMMMd", locale=language)


def _short_eur(value: Decimal, language: str) -> str:
    """Axis labels: as few digits as the tick needs (5 €, 2,5 €; €5, €2.5)."""
    number = format_decimal(value, "#,##0.##", locale=language)
    return f"{number}\u00a0€" if language == "de" else f"€{number}"


def _charts(report: UsageReport) -> dict:
    """The daily chart twice: wide for desktops, compact for phones (CSS shows one of them)."""
    language = active_language()
    points = []
    for one_day in report.days:
        totals = one_day.totals
        tooltip = ngettext(
            "%(day)s: %(num)s call, %(minutes)s min, %(spend)s",
            "%(day)s: %(num)s calls, %(minutes)s min, %(spend)s",
            totals.calls, day=dates.format_date(one_day.day, "medium", locale=language),
            minutes=_minutes(totals.billed_seconds, language), spend=money(totals.cost),
        )
        points.append(ChartDay(dates.format_skeleton("MMMd", one_day.day, locale=language), tooltip,
                               Decimal(totals.cost) / UNITS_PER_EUR, Decimal(totals.billed_seconds) / 60))
    busiest = max(report.days, key=lambda one_day: one_day.totals.cost)
    text = ChartText(
        title=_("Spend and billed minutes per day, %(range)s", range=_range_label(report.range)),
        description=_("Bars show the spend per day, a line the billed minutes per day. The highest daily "
                      "spend was %(spend)s on %(day)s. The table below the chart lists every day.",
                      spend=money(busiest.totals.cost),
                      day=dates.format_date(busiest.day, "long", locale=language)),
        spend_heading=_("Spend per day"),
        minutes_heading=_("Billed minutes per day"),
    )
    options = dict(text=text, spend_tick=lambda value: _short_eur(value, language),
                   minutes_tick=lambda value: format_decimal(value, "#,##0.#", locale=language))
    return {"wide": usage_chart(points, chart_id="usage-chart-wide", layout=WIDE, **options),
            "compact": usage_chart(points, chart_id="usage-chart-compact", layout=COMPACT, **options)}


def _minutes(seconds: int, language: str) -> str:
    return format_decimal(Decimal(seconds) / 60, format="#,##0.0", locale=language)


def _csv_lines(rows, language: str, zone: str):
    """The calls in the reader's convention. Times are local (the display zone), written as
    2026-11-03 14:05:09 so spreadsheets read them."""
    labels = _refund_labels()
    local_zone = dates.get_timezone(zone)

    def local(moment):
        if moment is None:
            return ""
        return dates.format_datetime(moment.replace(tzinfo=timezone.utc), "yyyy-MM-dd HH:mm:ss", tzinfo=local_zone,
                                     locale=language)

    header = [_("Start"), _("End"), _("Call ID"), _("From number"), _("To number"), _("Duration (s)"), _("Billed (s)"),
              _("Rate per minute (EUR)"), _("Amount (EUR)"), _("Refunded (EUR)"), _("Refund status")]
    return csv_chunks(header, ([
        local(call.started_at), local(call.ended_at), call.call_id, call.from_number or "",
        call.to_number or "", call.duration_seconds, call.billed_seconds,
        Number(format_amount_plain(call.rate_per_minute, language)), Number(format_amount_plain(call.amount, language)),
        Number(format_amount_plain(call.refunded_amount, language)), labels.get(call.refund_status, call.refund_status),
    ] for call in rows), language)

