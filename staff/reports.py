"""Staff reports under /admin/reports: one page and one streamed CSV per report (core.backoffice.reports computes).

Thin views: read the range filter, call one core.backoffice.reports function, format for the active language.
Every report is described once (title, whether it takes a range, its columns); the page, the CSV and
the index are built from that description.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timezone
from decimal import Decimal

from babel import dates
from babel.numbers import format_decimal
from flask import Response, abort, render_template, request, stream_with_context
from flask_babel import get_timezone, gettext as _, lazy_gettext as _l

from core.backoffice import reports as figures
from app.charts import COMPACT, WIDE, ChartDay, ChartText, usage_chart
from core.clock import utcnow
from app.csv_export import Number, csv_chunks
from app.locale import active_language, local_datetime, money, number
from app.extensions import db
from core.money import UNITS_PER_CENT, UNITS_PER_EUR, format_amount_plain
from core.calls.usage import InvalidRange, UsageRange, resolve_range
from app.web import render_page, staff_required
from app.forms import UsageFilterForm
from staff import bp



@dataclass(frozen=True)
class Column:
    label: object  # lazy string
    kind: str  # text | int | money | cents | date | datetime | percent | bool | reason
    value: Callable


@dataclass(frozen=True)
class Report:
    name: str
    title: object
    description: object
    ranged: bool
    columns: list[Column]
    rows: Callable  # (session, usage_range | None, now) -> list


SUSPICIOUS_REASONS = {"large_topup": _l("Top-up over 1,000 €"), "many_topups": _l("More than 5 top-ups in 24 hours")}
_COMPANY_COLUMNS = [
    Column(_l("Id"), "int", lambda r: r.company_id),
    Column(_l("Company"), "text", lambda r: r.company_name),
    Column(_l("Customer since"), "datetime", lambda r: r.created_at),
    Column(_l("Balance"), "money", lambda r: r.balance),
    Column(_l("Low-balance threshold"), "money", lambda r: r.threshold),
    Column(_l("Automatic top-up"), "bool", lambda r: r.auto_topup_enabled),
    Column(_l("Last top-up"), "datetime", lambda r: r.last_topup_at),
]

REPORTS = {report.name: report for report in [
    Report("daily-revenue", _l("Daily revenue"),
           _l("Top-ups credited per day (from the ledger), their refunds, and the invoices issued."), True,
           [Column(_l("Day"), "date", lambda r: r.day),
            Column(_l("Top-ups"), "int", lambda r: r.topups),
            Column(_l("Gross top-ups"), "money", lambda r: r.gross),
            Column(_l("Top-up refunds"), "money", lambda r: r.refunded),
            Column(_l("Invoiced (gross)"), "cents", lambda r: r.invoiced_cents),
            Column(_l("Average top-up"), "money", lambda r: r.average)],
           lambda session, rng, now: figures.daily_revenue(session, rng)),
    Report("billing-summary", _l("Billing summary per company"),
           _l("Top-ups, bonus and call usage in the period, the current balance and automatic top-ups."), True,
           [Column(_l("Id"), "int", lambda r: r.company_id),
            Column(_l("Company"), "text", lambda r: r.company_name),
            Column(_l("Top-ups"), "int", lambda r: r.topups),
            Column(_l("Top-up amount"), "money", lambda r: r.topup_amount),
            Column(_l("Bonus"), "money", lambda r: r.bonus),
            Column(_l("Usage"), "money", lambda r: r.usage),
            Column(_l("Current balance"), "money", lambda r: r.balance),
            Column(_l("Automatic top-up"), "bool", lambda r: r.auto_topup_enabled),
            Column(_l("Automatic top-ups succeeded"), "int", lambda r: r.auto_topups_succeeded),
            Column(_l("Automatic top-ups failed"), "int", lambda r: r.auto_topups_failed)],
           lambda session, rng, now: figures.billing_summary(session, rng)),
    Report("failed-payments", _l("Failed payment reasons"),
           _l("Top-ups whose payment failed, by error and decline code."), True,
           [Column(_l("Error code"), "text", lambda r: r.failure_code),
            Column(_l("Decline code"), "text", lambda r: r.decline_code),
            Column(_l("Kind"), "kind", lambda r: r.kind),
            Column(_l("Count"), "int", lambda r: r.count),
            Column(_l("Amount"), "money", lambda r: r.amount)],
           lambda session, rng, now: figures.failed_payment_reasons(session, rng)),
    Report("auto-topup-success", _l("Automatic top-up success rate"),
           _l("Attempts per week; the rate counts succeeded against failed and action required."), True,
           [Column(_l("Week from"), "date", lambda r: r.week_start),
            Column(_l("Attempts"), "int", lambda r: r.attempts),
            Column(_l("Succeeded"), "int", lambda r: r.succeeded),
            Column(_l("Failed"), "int", lambda r: r.failed),
            Column(_l("Action required"), "int", lambda r: r.action_required),
            Column(_l("Skipped"), "int", lambda r: r.skipped),
            Column(_l("Success rate"), "percent", lambda r: r.success_rate)],
           lambda session, rng, now: figures.auto_topup_weekly(session, rng)),
    Report("suspicious", _l("Suspicious activity"),
           _l("Top-ups over 1,000 € and more than 5 top-ups within 24 hours."), True,
           [Column(_l("Id"), "int", lambda r: r.company_id),
            Column(_l("Company"), "text", lambda r: r.company_name),
            Column(_l("Reason"), "reason", lambda r: r.reason),
            Column(_l("First top-up"), "datetime", lambda r: r.first_at),
            Column(_l("Last top-up"), "datetime", lambda r: r.last_at),
            Column(_l("Top-ups"), "int", lambda r: r.count),
            Column(_l("Amount"), "money", lambda r: r.amount)],
           lambda session, rng, now: figures.suspicious_activity(session, rng)),
    Report("never-topped-up", _l("Companies that never topped up"),
           _l("Companies without a single top-up in the ledger."), False, _COMPANY_COLUMNS,
           lambda session, rng, now: figures.never_topped_up(session)),
    Report("churn-risk", _l("Churn risk"),
           _l("No top-up for 60 days and a balance under 50 €."), False, _COMPANY_COLUMNS,
           lambda session, rng, now: figures.churn_risk(session, now)),
    Report("low-balance", _l("Low balance"),
           _l("Companies below their low-balance threshold."), False, _COMPANY_COLUMNS,
           lambda session, rng, now: figures.low_balance(session)),
]}
CHARTS = {"daily-revenue", "auto-topup-success"}
KIND_LABELS = {"checkout": _l("Checkout"), "auto": _l("Automatic")}


@bp.get("/reports/")
@staff_required()
def reports():
    return render_template("staff/reports/index.html", reports=REPORTS.values())


@bp.get("/reports/<name>")
@staff_required()
def report(name: str):
    definition = _definition(name)
    form = UsageFilterForm(request.args)
    usage_range, error = _read_range(form) if definition.ranged else (None, None)
    rows = chart = None
    if error is None:
        rows = definition.rows(db.session, usage_range, utcnow())
        if name in CHARTS:
            chart = _chart(name, rows, usage_range)
    query = _range_query(usage_range)
    table = [[_cell_html(column, column.value(row)) for column in definition.columns] for row in rows or []]
    return render_page("staff/reports/report.html", "staff/reports/report.html", status=400 if error else 200,
                       report=definition, form=form, usage_range=usage_range, error=error, table=table,
                       chart=chart, query=query)


@bp.get("/reports/<name>.csv")
@staff_required()
def report_csv(name: str):
    definition = _definition(name)
    form = UsageFilterForm(request.args)
    usage_range, error = _read_range(form) if definition.ranged else (None, None)
    if error is not None:
        return render_template("staff/reports/report.html", report=definition, form=form, usage_range=None,
                               error=error, table=[], chart=None, query={}), 400
    rows = definition.rows(db.session, usage_range, utcnow())
    language = active_language()
    zone = dates.get_timezone(usage_range.zone if usage_range else _zone_name())
    response = Response(stream_with_context(_csv_lines(definition, rows, language, zone)), mimetype="text/csv")
    suffix = f"-{usage_range.first_day.isoformat()}-{usage_range.last_day.isoformat()}" if usage_range else ""
    response.headers["Content-Disposition"] = f'attachment; filename="{name}{suffix}.csv"'
    return response


def _definition(name: str) -> Report:
    definition = REPORTS.get(name)
    if definition is None:
        abort(404)
    return definition


def _zone_name() -> str:
    zone = get_timezone()
    return getattr(zone, "key", None) or getattr(zone, "zone", None) or str(zone)


def _read_range(form: UsageFilterForm) -> tuple[UsageRange | None, str | None]:
    if not form.validate():
        problems = "; ".join(f"{form[name].label.text}: {' '.join(map(str, errors))}"
                             for name, errors in form.errors.items())
        return None, _("Please check the filter: %(problems)s", problems=problems)
    zone = get_timezone()
    today = utcnow().replace(tzinfo=timezone.utc).astimezone(zone).date()
    try:
        return resolve_range(form.chosen_period(), today=today, zone=zone,
                             start=form.start.data, end=form.end.data), None
    except InvalidRange as problem:
        return None, _("Please check the filter: %(problems)s", problems=str(form.RANGE_ERRORS[problem.reason]))


def _range_query(usage_range: UsageRange | None) -> dict:
    if usage_range is None:
        return {}
    return {"period": "custom", "start": usage_range.first_day.isoformat(), "end": usage_range.last_day.isoformat()}


def _percent(rate: Decimal, language: str) -> str:
    text = format_decimal(rate * 100, format="0.0", locale=language)
    return f"{text}\u00a0%" if language == "de" else f"{text}%"


def _cell_html(column: Column, value) -> str:
    if value is None:
        return "–"
    language = active_language()
    if column.kind == "money":
        return money(value)
    if column.kind == "cents":
        return money(value * UNITS_PER_CENT)
    if column.kind == "int":
        return number(value)
    if column.kind == "date":
        return dates.format_date(value, "medium", locale=language)
    if column.kind == "datetime":
        return local_datetime(value, "short")
    if column.kind == "percent":
        return _percent(value, language)
    if column.kind == "bool":
        return _("on") if value else _("off")
    if column.kind == "reason":
        return str(SUSPICIOUS_REASONS.get(value, value))
    if column.kind == "kind":
        return str(KIND_LABELS.get(value, value))
    return str(value) if value != "" else "–"


def _cell_csv(column: Column, value, language: str, zone) -> str:
    if value is None:
        return ""
    if column.kind == "money":
        return Number(format_amount_plain(value, language))
    if column.kind == "cents":
        return Number(format_amount_plain(value * UNITS_PER_CENT, language))
    if column.kind == "int":
        return Number(str(value))
    if column.kind == "date":
        return value.isoformat()
    if column.kind == "datetime":
        return dates.format_datetime(value.replace(tzinfo=timezone.utc), "yyyy-MM-dd HH:mm:ss", tzinfo=zone,
                                     locale=language)
    if column.kind == "percent":
        return Number(format_decimal(value * 100, format="0.00", locale=language))
    if column.kind == "bool":
        return _("yes") if value else _("no")
    if column.kind in ("reason", "kind"):
        return str((SUSPICIOUS_REASONS if column.kind == "reason" else KIND_LABELS).get(value, value))
    return str(value)


def _csv_lines(definition: Report, rows, language: str, zone):
    """The report in the reader's convention. Percentages are numbers (62,50 = 62.5 %); times are local."""
    return csv_chunks([_csv_heading(column) for column in definition.columns],
                      ([_cell_csv(column, column.value(row), language, zone) for column in definition.columns]
                       for row in rows), language)


def _csv_heading(column: Column) -> str:
    if column.kind in ("money", "cents"):
        return _("%(label)s (EUR)", label=column.label)
    if column.kind == "percent":
        return _("%(label)s (%%)", label=column.label)
    return str(column.label)


def _short_eur(value: Decimal, language: str) -> str:
    text = format_decimal(value, "#,##0.##", locale=language)
    return f"{text}\u00a0€" if language == "de" else f"€{text}"


def _chart(name: str, rows, usage_range: UsageRange):
    """The trend: daily gross top-ups (bars) and top-up count (line), or weekly attempts (bars) and
    success rate (line). Wide and compact, like the usage page (CSS shows one)."""
    language = active_language()

    def day_label(one_day: date) -> str:
        return dates.format_skeleton("MMMd", one_day, locale=language)

    if name == "daily-revenue":
        points = [ChartDay(day_label(row.day),
                           _("%(day)s: %(count)s top-ups, %(gross)s", day=dates.format_date(row.day, "medium",
                                                                                            locale=language),
                             count=number(row.topups), gross=money(row.gross)),
                           Decimal(row.gross) / UNITS_PER_EUR, Decimal(row.topups)) for row in rows]
        text = ChartText(title=_("Daily revenue"),
                         description=_("Bars show the gross top-ups per day, a line the number of top-ups. "
                                       "The table below lists every day."),
                         spend_heading=_("Gross top-ups per day"), minutes_heading=_("Top-ups per day"))
        options = dict(spend_tick=lambda value: _short_eur(value, language),
                       minutes_tick=lambda value: format_decimal(value, "#,##0.#", locale=language))
    else:
        points = [ChartDay(day_label(row.week_start),
                           _("Week from %(day)s: %(attempts)s attempts, success rate %(rate)s",
                             day=dates.format_date(row.week_start, "medium", locale=language),
                             attempts=number(row.attempts),
                             rate=_percent(row.success_rate, language) if row.success_rate is not None else "–"),
                           Decimal(row.attempts), (row.success_rate or Decimal(0)) * 100) for row in rows]
        text = ChartText(title=_("Automatic top-up success rate"),
                         description=_("Bars show the attempts per week, a line the success rate. "
                                       "The table below lists every week."),
                         spend_heading=_("Attempts per week"), minutes_heading=_("Success rate per week (%)"))
        options = dict(spend_tick=lambda value: format_decimal(value, "#,##0.##", locale=language),
                       minutes_tick=lambda value: _percent(value / 100, language))
    return {"wide": usage_chart(points, text=text, chart_id=f"{name}-chart-wide", layout=WIDE, **options),
            "compact": usage_chart(points, text=text, chart_id=f"{name}-chart-compact", layout=COMPACT, **options)}
