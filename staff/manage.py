"""Staff management of a company's users and API keys, and of the bonus rules (staff admins act)."""

from __future__ import annotations

from datetime import datetime, time
from decimal import Decimal

from flask import abort, flash, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from core.accounts.users import AccountError, invite_user, set_active, set_role
from core.calls.api_keys import ApiKeyNotFound, revoke_api_key
from core.accounts.audit import record_action
from core.payments.bonuses import create_rule
from core.clock import utcnow
from app.locale import active_language
from core.notifications.mail import EmailKind, queue_email
from app.auth import set_password_url
from app.extensions import db
from core.schema import BonusRule, Company, Role, User
from core.money import InvalidAmount, parse_amount, parse_decimal, plain_amount
from app.web import redirect_to, staff_actor, staff_required
from staff.manage_forms import BonusRuleForm, InviteForm, ReasonForm, RoleForm
from staff import bp



def _to_company(company_id: int):
    return redirect_to(url_for("staff.company", company_id=company_id, tab="users"))


def _refused(company_id: int, message: str):
    flash(_("Nothing was changed: %(problems)s", problems=message), "error")
    return _to_company(company_id)


def _form_problems(form) -> str:
    return "; ".join(" ".join(map(str, errors)) for errors in form.errors.values())


@bp.post("/companies/<id:company_id>/users")
@staff_required(Role.STAFF_ADMIN)
def invite(company_id: int):
    if db.session.get(Company, company_id) is None:
        abort(404)
    form = InviteForm()
    if not form.validate():
        return _refused(company_id, _form_problems(form))
    try:
        user = invite_user(db.session, company_id, form.email.data, form.name.data or "", Role(form.role.data))
    except AccountError:
        db.session.rollback()
        return _refused(company_id, _("a user with this email exists already."))
    record_action(db.session, staff_actor(), "user.invite", target_type="user", target_id=user.id,
                  company_id=company_id, after={"email": user.email, "role": user.role}, reason=form.reason.data)
    queue_email(db.session, company_id=company_id, kind=EmailKind.USER_INVITE, recipient=user.email,
                dedupe_key=f"invite:{user.id}:{utcnow().isoformat()}",
                context={"set_password_url": set_password_url(user)})
    db.session.commit()
    flash(_("%(email)s was invited; the email with the link to set a password is on its way.", email=user.email),
          "success")
    return _to_company(company_id)


@bp.post("/users/<id:user_id>/active")
@staff_required(Role.STAFF_ADMIN)
def toggle_active(user_id: int):
    user = db.session.get(User, user_id)
    if user is None or user.company_id is None:
        abort(404)
    form = ReasonForm()
    if not form.validate():
        return _refused(user.company_id, _form_problems(form))
    record_action(db.session, staff_actor(), "user.deactivate" if user.active else "user.reactivate",
                  target_type="user", target_id=user.id, company_id=user.company_id, before={"active": user.active},
                  after={"active": not user.active}, reason=form.reason.data)
    set_active(db.session, user, not user.active)
    db.session.commit()
    flash(_("The user can log in again.") if user.active else _("The user can no longer log in."), "success")
    return _to_company(user.company_id)


@bp.post("/users/<id:user_id>/role")
@staff_required(Role.STAFF_ADMIN)
def change_role(user_id: int):
    user = db.session.get(User, user_id)
    if user is None or user.company_id is None:
        abort(404)
    form = RoleForm()
    if not form.validate():
        return _refused(user.company_id, _form_problems(form))
    record_action(db.session, staff_actor(), "user.role", target_type="user", target_id=user.id,
                  company_id=user.company_id, before={"role": user.role}, after={"role": form.role.data},
                  reason=form.reason.data)
    set_role(db.session, user, Role(form.role.data))
    db.session.commit()
    flash(_("The role was changed; the user's open sessions have ended."), "success")
    return _to_company(user.company_id)


@bp.post("/companies/<id:company_id>/api-keys/<id:key_id>/revoke")
@staff_required(Role.STAFF_ADMIN)
def revoke_key(company_id: int, key_id: int):
    form = ReasonForm()
    if not form.validate():
        return _refused(company_id, _form_problems(form))
    try:
        key = revoke_api_key(db.session, company_id, key_id)
    except ApiKeyNotFound:
        abort(404)
    record_action(db.session, staff_actor(), "api_key.revoke", target_type="api_key", target_id=key.id,
                  company_id=company_id, after={"name": key.name}, reason=form.reason.data)
    db.session.commit()
    flash(_("The API key was revoked."), "success")
    return _to_company(company_id)


# -- bonus rules -------------------------------------------------------------------------------------

def _rules_page(form: BonusRuleForm, status: int = 200):
    rules = db.session.scalars(select(BonusRule).order_by(BonusRule.active.desc(), BonusRule.min_amount)).all()
    return render_template("staff/bonus_rules.html", rules=rules, form=form, end_form=ReasonForm()), status


@bp.get("/bonus-rules")
@staff_required()
def bonus_rules():
    return _rules_page(BonusRuleForm(formdata=None))


@bp.post("/bonus-rules")
@staff_required(Role.STAFF_ADMIN)
def create_bonus_rule():
    form = BonusRuleForm()
    problem = None if form.validate() else _form_problems(form)
    values = None if problem else _rule_values(form)
    if values is None:
        flash(_("Nothing was changed: %(problems)s", problems=problem or _("give a minimum amount and either a "
                                                                           "percentage or a fixed bonus.")), "error")
        return _rules_page(form, 422)
    rule = create_rule(db.session, form.name.data.strip(), **values)
    record_action(db.session, staff_actor(), "bonus_rule.create", target_type="bonus_rule", target_id=rule.id,
                  after={"name": rule.name, "min_amount": rule.min_amount, "percent_basis_points":
                         rule.percent_basis_points, "fixed_amount": rule.fixed_amount}, reason=form.reason.data)
    db.session.commit()
    flash(_("The bonus rule was created."), "success")
    return redirect_to(url_for("staff.bonus_rules"))


def _rule_values(form: BonusRuleForm) -> dict | None:
    language = active_language()
    try:
        minimum = parse_amount(form.min_amount.data, language)
        fixed = parse_amount(form.fixed.data, language) if form.fixed.data else None
        percent = parse_decimal(form.percent.data, language) if form.percent.data else None
    except InvalidAmount:
        return None
    if (percent is None) == (fixed is None) or minimum <= 0 or (fixed is not None and fixed <= 0):
        return None
    if percent is not None and not (0 < percent <= 100 and (percent * 100) == int(percent * 100)):
        return None
    return {"min_amount": minimum, "fixed_amount": fixed,
            "percent_basis_points": int(percent * 100) if percent is not None else None,
            "valid_from": datetime.combine(form.valid_from.data, time.min) if form.valid_from.data else None,
            "valid_until": datetime.combine(form.valid_until.data, time.min) if form.valid_until.data else None,
            "first_topup_only": form.first_topup_only.data}


@bp.route("/bonus-rules/<id:rule_id>/edit", methods=["GET", "POST"])
@staff_required(Role.STAFF_ADMIN)
def edit_bonus_rule(rule_id: int):
    rule = db.session.get(BonusRule, rule_id)
    if rule is None or not rule.active:
        abort(404)
    form = BonusRuleForm() if request.method == "POST" else _form_of(rule)
    if request.method == "GET":
        return render_template("staff/bonus_rule_edit.html", rule=rule, form=form)
    values = _rule_values(form) if form.validate() else None
    if values is None:
        flash(_("Nothing was changed: %(problems)s", problems=_form_problems(form) or _(
            "give a minimum amount and either a percentage or a fixed bonus.")), "error")
        return render_template("staff/bonus_rule_edit.html", rule=rule, form=form), 422
    before = _rule_state(rule)
    rule.name = form.name.data.strip()
    for field, value in values.items():
        setattr(rule, field, value)
    record_action(db.session, staff_actor(), "bonus_rule.edit", target_type="bonus_rule", target_id=rule.id,
                  before=before, after=_rule_state(rule), reason=form.reason.data)
    db.session.commit()
    flash(_("The bonus rule was changed. It applies to top-ups credited from now on."), "success")
    return redirect_to(url_for("staff.bonus_rules"))


def _form_of(rule: BonusRule) -> BonusRuleForm:
    language = active_language()
    return BonusRuleForm(formdata=None, name=rule.name, min_amount=plain_amount(rule.min_amount, language),
                         percent=str(Decimal(rule.percent_basis_points) / 100) if rule.percent_basis_points else "",
                         fixed=plain_amount(rule.fixed_amount, language) if rule.fixed_amount else "",
                         valid_from=rule.valid_from.date() if rule.valid_from else None,
                         valid_until=rule.valid_until.date() if rule.valid_until else None,
                         first_topup_only=rule.first_topup_only)


def _rule_state(rule: BonusRule) -> dict:
    return {"name": rule.name, "min_amount": rule.min_amount, "percent_basis_points": rule.percent_basis_points,
            "fixed_amount": rule.fixed_amount, "first_topup_only": rule.first_topup_only,
            "valid_from": rule.valid_from.isoformat() if rule.valid_from else None,
            "valid_until": rule.valid_until.isoformat() if rule.valid_until else None}


@bp.post("/bonus-rules/<id:rule_id>/end")
@staff_required(Role.STAFF_ADMIN)
def end_bonus_rule(rule_id: int):
    rule = db.session.get(BonusRule, rule_id)
    if rule is None:
        abort(404)
    form = ReasonForm()
    if not form.validate():
        flash(_("Nothing was changed: %(problems)s", problems=_form_problems(form)), "error")
        return redirect_to(url_for("staff.bonus_rules"))
    rule.active = False
    record_action(db.session, staff_actor(), "bonus_rule.end", target_type="bonus_rule", target_id=rule.id,
                  before={"active": True}, after={"active": False}, reason=form.reason.data)
    db.session.commit()
    flash(_("The bonus rule has ended."), "success")
    return redirect_to(url_for("staff.bonus_rules"))
