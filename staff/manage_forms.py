"""Forms of the staff company pages. Labels and messages are lazily translated."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import BooleanField, HiddenField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Email, Length, NumberRange, Optional

from app.inputs import DayField, WholeNumberField
from app.web import Form
from core.accounts.companies import SORTS


class CompanyListForm(Form):
    class Meta:
        csrf = False

    q = StringField(_l("Search"), validators=[Optional(), Length(max=200)])
    sort = SelectField(choices=SORTS, default="name")
    after = StringField(validators=[Optional(), Length(max=300)])


class ReasonForm(Form):
    reason = TextAreaField(_l("Reason"), validators=[DataRequired(_l("Please give a reason.")), Length(max=1000)])


class BlockForm(ReasonForm):
    block = HiddenField()


class RateForm(ReasonForm):
    rate_per_minute = StringField(_l("Rate per minute (EUR)"), validators=[DataRequired(), Length(max=20)])
    increment = WholeNumberField(_l("Billing increment (seconds)"), validators=[DataRequired(), NumberRange(1, 3600)])


class ThresholdForm(ReasonForm):
    threshold = StringField(_l("Low-balance threshold (EUR)"), validators=[DataRequired(), Length(max=20)])


COMPANY_ROLES = [SelectChoice("company_member", _l("Member (read only)")),
                 SelectChoice("company_admin", _l("Administrator"))]


class InviteForm(ReasonForm):
    email = StringField(_l("Email"), validators=[DataRequired(), Email(), Length(max=254)])
    name = StringField(_l("Name"), validators=[Optional(), Length(max=200)])
    role = SelectField(_l("Role"), choices=COMPANY_ROLES)


class RoleForm(ReasonForm):
    role = SelectField(_l("Role"), choices=COMPANY_ROLES)


class BonusRuleForm(ReasonForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])
    min_amount = StringField(_l("From a top-up of (EUR)"), validators=[DataRequired(), Length(max=20)])
    percent = StringField(_l("Bonus in percent"), validators=[Optional(), Length(max=10)])
    fixed = StringField(_l("or a fixed bonus (EUR)"), validators=[Optional(), Length(max=20)])
    valid_from = DayField(_l("Valid from"), validators=[Optional()])
    valid_until = DayField(_l("Valid until"), validators=[Optional()])
    first_topup_only = BooleanField(_l("Only for a company's first top-up"))
