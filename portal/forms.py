"""Customer-facing forms. Labels and messages are lazily translated."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone

from flask_babel import get_timezone
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateField, EmailField, HiddenField, PasswordField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from core.i18n import LANGUAGES
from core.models import EntryType

ENTRY_TYPE_LABELS = {
    EntryType.TOPUP.value: _l("Top-up"),
    EntryType.BONUS.value: _l("Bonus"),
    EntryType.CHARGE.value: _l("Call charge"),
    EntryType.REFUND.value: _l("Refund"),
    EntryType.ADJUSTMENT.value: _l("Adjustment"),
    EntryType.TOPUP_REFUND.value: _l("Top-up refund"),
    EntryType.BONUS_REVERSAL.value: _l("Bonus reversal"),
}


class LoginForm(FlaskForm):
    email = EmailField(_l("Email"), validators=[DataRequired(), Length(max=254)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=200)])
    next = HiddenField()


class LanguageForm(FlaskForm):
    language = SelectField(_l("Language"), choices=[SelectChoice(code, name) for code, name in LANGUAGES.items()])
    next = HiddenField()


class TransactionFilterForm(FlaskForm):
    """GET filters of the ledger list; read from the query string, so no CSRF token."""

    class Meta:
        csrf = False

    type = SelectField(
        _l("Type"),
        choices=[SelectChoice("", _l("All types"))]
        + [SelectChoice(value, label) for value, label in ENTRY_TYPE_LABELS.items()],
        validators=[Optional()],
        default="",
    )
    start = DateField(_l("From"), validators=[Optional()])
    end = DateField(_l("To"), validators=[Optional()])
    after = StringField(validators=[Optional(), Length(max=200)])
    before = StringField(validators=[Optional(), Length(max=200)])

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
