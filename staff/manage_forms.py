"""Forms of the staff company pages. Labels and messages are lazily translated."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import HiddenField, IntegerField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, NumberRange, Optional


class CompanyListForm(FlaskForm):
    class Meta:
        csrf = False

    q = StringField(_l("Search"), validators=[Optional(), Length(max=200)])
    sort = StringField(validators=[Optional()])
    after = StringField(validators=[Optional(), Length(max=300)])


class ReasonForm(FlaskForm):
    reason = TextAreaField(_l("Reason"), validators=[DataRequired(_l("Please give a reason.")), Length(max=1000)])


class BlockForm(ReasonForm):
    block = HiddenField()


class RateForm(ReasonForm):
    rate_per_minute = StringField(_l("Rate per minute (EUR)"), validators=[DataRequired(), Length(max=20)])
    increment = IntegerField(_l("Billing increment (seconds)"), validators=[DataRequired(), NumberRange(1, 3600)])


class ThresholdForm(ReasonForm):
    threshold = StringField(_l("Low-balance threshold (EUR)"), validators=[DataRequired(), Length(max=20)])
