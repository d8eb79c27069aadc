"""Customer-facing forms. Labels and messages are lazily translated."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone

from flask_babel import get_timezone, lazy_gettext as _l
from wtforms import BooleanField, HiddenField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from core.i18n import ENTRY_TYPE_LABELS
from app.inputs import DayField
from app.web import Form





class TransactionFilterForm(Form):
    """GET filters of the ledger list (the page cursor is read by Cursor.from_query); read from the
    query string, so no CSRF token."""

    class Meta:
        csrf = False

    type = SelectField(
        _l("Type"),
        choices=[SelectChoice("", _l("All types"))]
        + [SelectChoice(value, _l(label)) for value, label in ENTRY_TYPE_LABELS.items()],
        validators=[Optional()],
        default="",
    )
    start = DayField(_l("From"), validators=[Optional()])
    end = DayField(_l("To"), validators=[Optional()])

    def validate_end(self, field):
        if field.data and self.start.data and field.data < self.start.data:
            raise ValidationError(_l("The end date must not be before the start date."))

    def utc_bounds(self) -> tuple[datetime | None, datetime | None]:
        """The chosen local days as a UTC range: [start 00:00, day after end 00:00)."""
        return _local_midnight_utc(self.start.data), _local_midnight_utc(
            self.end.data + timedelta(days=1) if self.end.data else None
        )


def _local_midnight_utc(day) -> datetime | None:
    if day is None:
        return None
    zone = get_timezone()  # a pytz zone: localize() picks the right offset for that day
    return zone.localize(datetime.combine(day, time.min)).astimezone(timezone.utc).replace(tzinfo=None)


AMOUNT_ERRORS = {
    "missing": _l("Please choose or enter an amount."),
    "not_a_number": _l("Please enter the amount as a number, e.g. 150 or 150,50."),
    "too_precise": _l("Please enter at most two decimal places."),
    "too_large": _l("This amount is too large."),
    "out_of_range": _l("Top-ups are possible from %(minimum)s to %(maximum)s."),
}


class TopupForm(Form):
    preset = HiddenField()
    amount = StringField(_l("Amount in EUR"), validators=[Length(max=30)])
    save_payment_method = BooleanField(_l("Save the payment method for automatic top-ups"))

    def chosen_text(self) -> str:
        """A typed amount wins over a preset button."""
        return (self.amount.data or "").strip() or (self.preset.data or "").strip()


class AddPaymentMethodForm(Form):
    """A form with only the CSRF token, for buttons that post an action."""


class ApiKeyForm(Form):
    name = StringField(_l("Name of the key"), validators=[DataRequired(), Length(max=100)])


class AutoTopupForm(Form):
    """Automatic top-up settings. Amounts and the limit are read as text and parsed by the view."""

    enabled = BooleanField(_l("Top up automatically"))
    threshold = StringField(_l("When the available balance falls below"), validators=[Length(max=30)])
    amount = StringField(_l("Top up by"), validators=[Length(max=30)])
    payment_method = StringField(_l("Payment method"), validators=[Length(max=100)])
    daily_limit = StringField(_l("At most this many automatic top-ups per day"), validators=[Length(max=10)])
    monthly_cap = StringField(_l("At most this amount per calendar month"), validators=[Length(max=30)])

