"""Core's tests run on a plain SQLAlchemy session (tests/conftest.py's ``session``), never on the app."""

import pytest

from tests.builders import add_company


@pytest.fixture
def make_company(session):
    """Create a company (with an optional opening top-up) and a company admin for it, committed."""
    counter = iter(range(1, 1000))

    def make(name: str | None = None, balance: int = 0, member: bool = False, **details):
        created = add_company(session, next(counter), name, balance, member, **details)
        session.commit()
        return created

    return make
