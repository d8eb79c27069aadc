"""Forms more than one blueprint uses: signing in, choosing a password and a language, and the
period filter of the usage page and the staff reports. Labels and messages are lazily translated."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import EmailField, HiddenField, PasswordField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, EqualTo, Length, Optional

from app.inputs import DayField
from app.web import Form
from core.calls.usage import MAX_RANGE_DAYS, Period
from core.i18n import LANGUAGES


class LoginForm(Form):
    email = EmailField(_l("Email"), validators=[DataRequired(), Length(max=254)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=200)])
    next = HiddenField()


class SetPasswordLinkForm(Form):
    """The set-password link, posted: by the page's script from the link's fragment, or pasted."""

    link = StringField(_l("The link from your email"), validators=[DataRequired(), Length(max=2000)])


class SetPasswordForm(SetPasswordLinkForm):
    password = PasswordField(_l("New password"), validators=[DataRequired(), Length(min=10, max=200)])
    confirm = PasswordField(_l("Repeat the password"), validators=[DataRequired(), EqualTo(
        "password", message=_l("The two passwords are not the same."))])


class LanguageForm(Form):
    language = SelectField(_l("Language"), choices=[SelectChoice(code, name) for code, name in LANGUAGES.items()])
    next = HiddenField()


class UsageFilterForm(Form):
    """GET filters of the usage page: a period or a custom range of local days (the call list's
    cursor is read by core.ledger.history.Cursor.from_query). Read from the query string, so no CSRF
    token. Dates without a period mean a custom range."""

    class Meta:
        csrf = False

    period = SelectField(
        _l("Period"),
        choices=[
            SelectChoice(Period.THIS_MONTH.value, _l("This month")),
            SelectChoice(Period.LAST_MONTH.value, _l("Last month")),
            SelectChoice(Period.LAST_7_DAYS.value, _l("Last 7 days")),
            SelectChoice(Period.LAST_30_DAYS.value, _l("Last 30 days")),
            SelectChoice(Period.LAST_90_DAYS.value, _l("Last 90 days")),
            SelectChoice(Period.CUSTOM.value, _l("Custom range")),
        ],
        default=Period.THIS_MONTH.value,
    )
    start = DayField(_l("From"), validators=[Optional()])
    end = DayField(_l("To"), validators=[Optional()])

    RANGE_ERRORS = {  # core.calls.usage.InvalidRange reasons
        "missing_dates": _l("Please choose a start and an end date for a custom range."),
        "end_before_start": _l("The end date must not be before the start date."),
        "too_long": _l("A custom range can be at most %(days)s days long.", days=MAX_RANGE_DAYS),
        "out_of_bounds": _l("Please choose dates between the years 2000 and 2100."),
    }

    def chosen_period(self) -> str:
        if not self.period.raw_data and (self.start.data or self.end.data):
            return Period.CUSTOM.value
        return self.period.data
