"""Staff forms. Labels and messages are lazily translated."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import BooleanField, HiddenField, RadioField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length

from app.web import Form


class _MoneyActionForm(Form):
    """Step one posts the values; step two (``confirm``) repeats them as hidden fields together
    with the balance shown in the preview and the form's request key."""

    reason = TextAreaField(_l("Reason"), validators=[Length(max=1000)])
    confirm = HiddenField()
    expected_balance = HiddenField()
    request_key = HiddenField()


class AdjustmentForm(_MoneyActionForm):
    direction = RadioField(_l("Direction"), choices=[SelectChoice("credit", _l("Credit (+)")), SelectChoice("debit", _l("Debit (−)"))],
                           default="credit")
    amount = StringField(_l("Amount in EUR"), validators=[Length(max=30)])
    description = StringField(_l("Description"), validators=[Length(max=500)])


class CallRefundForm(_MoneyActionForm):
    mode = RadioField(_l("Refund"), choices=[SelectChoice("full", _l("Full refund")), SelectChoice("amount", _l("Partial, by amount")),
                                             SelectChoice("seconds", _l("Partial, by seconds"))],
                      default="full")
    amount = StringField(_l("Amount in EUR"), validators=[Length(max=30)])
    seconds = StringField(_l("Seconds"), validators=[Length(max=12)])


class TopupRefundForm(_MoneyActionForm):
    mode = RadioField(_l("Refund"), choices=[SelectChoice("full", _l("Full refund")), SelectChoice("amount", _l("Partial, by amount"))],
                      default="full")
    amount = StringField(_l("Amount in EUR"), validators=[Length(max=30)])
    override_available = BooleanField(_l("Refund even if the balance does not cover it (staff admins only)"))


class ReviewActionForm(_MoneyActionForm):
    """Crediting what Stripe received for a top-up under review, or refunding its payment: a reason."""
