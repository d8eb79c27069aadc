"""Company settings: API keys for the telephony platform (thin views)."""

from __future__ import annotations

from flask import abort, flash, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user

from core.calls.api_keys import ApiKeyNotFound, company_api_keys, create_api_key, revoke_api_key
from app.extensions import db
from app.web import company_admin_required, company_user_required, redirect_to
from portal.forms import ApiKeyForm, AddPaymentMethodForm
from portal import bp



def _page(form: ApiKeyForm, *, new_key: str | None = None, status: int = 200):
    keys = company_api_keys(db.session, current_user.company_id)
    return render_template("portal/api_keys.html", form=form, keys=keys, new_key=new_key,
                           action_form=AddPaymentMethodForm()), status


@bp.get("/settings/api-keys")
@company_user_required
def api_keys():
    return _page(ApiKeyForm())


@bp.post("/settings/api-keys")
@company_admin_required
def create_key():
    form = ApiKeyForm()
    if not form.validate():
        return _page(form, status=422)
    _row, key = create_api_key(db.session, current_user.company_id, form.name.data, user_id=current_user.id)
    db.session.commit()
    return _page(ApiKeyForm(formdata=None), new_key=key, status=201)


@bp.post("/settings/api-keys/<id:key_id>/revoke")
@company_admin_required
def revoke_key(key_id: int):
    if not AddPaymentMethodForm().validate():
        abort(400)
    try:
        row = revoke_api_key(db.session, current_user.company_id, key_id)
    except ApiKeyNotFound:
        abort(404)
    db.session.commit()
    flash(_("The key \u201c%(name)s\u201d was revoked. It no longer works.", name=row.name), "success")
    return redirect_to(url_for("portal.api_keys"))
