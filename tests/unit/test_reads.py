"""core.schema.read_rows: the reads every page runs, straight to psycopg on PostgreSQL."""

import enum

import pytest
from sqlalchemy import Enum, Numeric, cast, literal, select
from sqlalchemy.exc import DBAPIError

from core.accounts.users import _SIGNED_IN_USER, find_user_by_email
from core.ledger.balances import _SUMMARY
from core.clock import utcnow
from core.schema import _compiled_without_conversions, db, read_rows
from core.money import eur
from core.ledger.history import _EXPORTED, Direction, _ledger_statement
from core.calls.usage import runway_parameters


def test_the_pages_reads_give_what_sqlalchemy_gives(app, make_company):
    company_id, email = make_company(balance=eur("12.34"))
    now = utcnow()
    with app.app_context():
        reads = {
            "user": (_SIGNED_IN_USER, {"user_id": find_user_by_email(db.session, email).id}),
            "summary": (_SUMMARY, {"company_id": company_id, "rate_company_id": company_id, "moment": now,
                                   **runway_parameters(now)}),
            "ledger": (_ledger_statement(Direction.OLDER, _EXPORTED, by_type=True, from_start=True, to_end=False),
                       {"company_id": company_id, "entry_type": "topup", "start": now.replace(year=2020),
                        "cursor_time": now.replace(year=2100), "cursor_id": 2**40, "limit": 5}),
        }
        for name, (statement, parameters) in reads.items():
            if db.engine.dialect.name == "postgresql":
                assert _compiled_without_conversions(statement, db.engine.dialect) is not None, name
            direct = read_rows(db.session, statement, parameters)
            through_sqlalchemy = db.session.connection().execute(statement, parameters).all()
            assert len(direct) == 1, name
            assert [(row._fields, tuple(row)) for row in direct] == [
                (row._fields, tuple(row)) for row in through_sqlalchemy], name


class Colour(enum.Enum):
    RED = "red"


def test_values_that_sqlalchemy_converts_take_its_path(app):
    statement = select(cast(literal("1.50"), Numeric(10, 2)).label("amount"),
                       cast(literal("RED"), Enum(Colour, native_enum=False)).label("colour"))
    with app.app_context():
        assert _compiled_without_conversions(statement, db.engine.dialect) is None
        row, = read_rows(db.session, statement, {})
    assert (str(row.amount), row.colour) == ("1.50", Colour.RED)


def test_a_lost_connection_fails_as_through_sqlalchemy_and_is_replaced(app, make_company):
    _, email = make_company()
    with app.app_context():
        user_id = find_user_by_email(db.session, email).id
        db.session.commit()
        db.session.connection().connection.driver_connection.close()  # as if the server had gone away
        with pytest.raises(DBAPIError) as failure:
            read_rows(db.session, _SIGNED_IN_USER, {"user_id": user_id})
        assert failure.value.connection_invalidated
        db.session.rollback()
        assert read_rows(db.session, _SIGNED_IN_USER, {"user_id": user_id})[0].email == email
