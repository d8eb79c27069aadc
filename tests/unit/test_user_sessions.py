"""Every change that must end a user's sessions raises their session generation, in the one service."""

import pytest

from core.accounts.users import (
    AccountError, end_sessions, find_user_by_email, set_active, set_password, set_role, signed_in_user,
)
from core.schema import Role


def generation(session, email: str) -> int:
    return signed_in_user(session, find_user_by_email(session, email).id).session_generation


@pytest.mark.parametrize("change", [
    lambda session, user: end_sessions(session, user.id),
    lambda session, user: set_password(session, user, "another-good-password"),
    lambda session, user: set_active(session, user, False),
    lambda session, user: set_role(session, user, Role.COMPANY_MEMBER),
], ids=["logout", "new password", "deactivation", "role change"])
def test_each_change_that_ends_sessions_raises_the_generation_once(session, make_company, change):
    _, email = make_company()
    before = generation(session, email)
    change(session, find_user_by_email(session, email))
    session.commit()
    assert generation(session, email) == before + 1


def test_a_company_user_cannot_be_given_a_staff_role(session, make_company):
    _, email = make_company()
    user = find_user_by_email(session, email)
    with pytest.raises(AccountError):
        set_role(session, user, Role.STAFF_ADMIN)
    session.rollback()
    assert generation(session, email) == 0
