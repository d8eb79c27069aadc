"""The usage API: reservations, per-second charges, idempotency, errors, and many clients at once."""

import http.client
import json
import threading
from datetime import datetime, timedelta, timezone

import pytest
import time_machine
from sqlalchemy import select, update
from werkzeug.serving import make_server

from core.calls.api_keys import create_api_key
from core.clock import utcnow
from core.ledger.postings import verify_ledger
from app.extensions import db
from core.schema import CallCharge, CallReservation, Company, PrepaidBalance
from core.money import eur
from tests.helpers import csrf_token_from, log_in
from tests.round_trips import counting_round_trips

START = "2026-11-21T10:00:00Z"


@pytest.fixture(autouse=True)
def calls_happen_now():
    """The platform reports calls as they happen: the clock stands a few minutes after START."""
    with time_machine.travel(datetime(2026, 11, 21, 10, 5, tzinfo=timezone.utc), tick=True):
        yield


@pytest.fixture
def company(app, make_company):
    """(company id, headers with its API key), 10 € on the balance."""
    company_id, _ = make_company(balance=eur("10"), created_at=datetime(2026, 1, 1))
    with app.app_context():
        _, key = create_api_key(db.session, company_id, "Platform")
        db.session.commit()
    return company_id, {"Authorization": f"Bearer {key}"}


def account(app, company_id):
    with app.app_context():
        row = db.session.get(PrepaidBalance, company_id)
        return row.balance, row.reserved


def start(client, headers, call_id="c1", **body):
    return client.post(f"/api/v1/calls/{call_id}/start", json={"started_at": START, **body}, headers=headers)


def end(client, headers, call_id="c1", duration=61, **body):
    return client.post(f"/api/v1/calls/{call_id}/end", json={"duration_seconds": duration, **body}, headers=headers)


def test_a_start_holds_five_minutes_and_the_end_charges_per_second(app, client, company):
    company_id, headers = company
    started = start(client, headers, to="+49301234567")
    assert started.status_code == 200
    assert started.json == {"call_id": "c1", "reservation": "2.1000", "available": "7.9000", "max_seconds": 300,
                            "ended": False}
    assert account(app, company_id) == (eur("10"), eur("2.10"))
    ended = end(client, headers, ended_at="2026-11-21T10:01:01Z")
    assert ended.status_code == 200
    assert ended.json == {"call_id": "c1", "amount": "0.4270", "billed_seconds": 61, "rate_per_minute": "0.4200",
                          "balance_after": "9.5730"}
    assert account(app, company_id) == (eur("9.573"), 0)
    with app.app_context():
        charge = db.session.scalar(select(CallCharge))
        assert (charge.to_number, charge.started_at, charge.duration_seconds) == ("+49301234567", datetime(2026, 11, 21, 10), 61)


def test_a_repeated_start_or_end_returns_the_first_answer_and_changes_nothing(app, client, company):
    company_id, headers = company
    first_start, again_start = start(client, headers), start(client, headers, started_at="2026-11-21T10:03:00Z")
    assert first_start.json == again_start.json
    assert account(app, company_id)[1] == eur("2.10")
    first_end, again_end = end(client, headers, duration=61), end(client, headers, duration=999)
    assert first_end.json == again_end.json and account(app, company_id) == (eur("9.573"), 0)


def test_concurrent_duplicate_ends_charge_once(app, company):
    company_id, headers = company
    start(app.test_client(), headers)
    answers, barrier = [], threading.Barrier(6)

    def send():
        barrier.wait()
        answers.append(end(app.test_client(), headers, duration=120).json)

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({json.dumps(answer, sort_keys=True) for answer in answers}) == 1
    assert account(app, company_id) == (eur("10") - eur("0.84"), 0)


def test_concurrent_duplicate_starts_hold_once(app, company):
    company_id, headers = company
    barrier, statuses = threading.Barrier(6), []

    def send():
        barrier.wait()
        statuses.append(start(app.test_client(), headers).status_code)

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 6 and account(app, company_id)[1] == eur("2.10")


def test_a_call_that_ends_without_a_start_is_charged_all_the_same(app, client, company):
    company_id, headers = company
    assert end(client, headers, "lost-start", duration=30).json["amount"] == "0.2100"
    assert account(app, company_id) == (eur("9.79"), 0)


def test_a_short_balance_holds_what_is_available_and_below_a_minute_refuses(app, client, make_company):
    company_id, _ = make_company(balance=eur("1"))
    with app.app_context():
        _, key = create_api_key(db.session, company_id, "k")
        db.session.commit()
    headers = {"Authorization": f"Bearer {key}"}
    held = start(client, headers, "a").json
    assert held["reservation"] == "1.0000" and held["max_seconds"] == 142  # 1 € at 0.42 €/min
    refused = start(client, headers, "b")
    assert refused.status_code == 402 and refused.json["error"]["code"] == "insufficient_funds"


def test_a_call_in_progress_may_take_the_balance_below_zero_then_starts_are_refused(app, client, company):
    company_id, headers = company
    start(client, headers)
    assert end(client, headers, duration=3600).json["balance_after"] == "-15.2000"  # 25.20 € for an hour
    refused = start(client, headers, "next")
    assert refused.status_code == 402 and refused.json["error"]["code"] == "insufficient_funds"
    assert account(app, company_id) == (-eur("15.20"), 0)


def test_a_blocked_company_cannot_start_calls(app, client, company):
    company_id, headers = company
    with app.app_context():
        db.session.execute(update(Company).where(Company.id == company_id).values(blocked_at=utcnow()))
        db.session.commit()
    answer = start(client, headers)
    assert answer.status_code == 402 and answer.json["error"]["code"] == "company_blocked"


def test_reservations_of_calls_that_never_end_expire(app, client, company):
    company_id, headers = company
    start(client, headers, "forgotten", started_at=(utcnow() - timedelta(hours=5)).isoformat() + "Z")
    start(client, headers, "recent", started_at=utcnow().isoformat() + "Z")
    assert "1 reservation(s) expired." in app.test_cli_runner().invoke(args=["calls", "expire"]).output
    with app.app_context():
        statuses = dict(db.session.execute(select(CallReservation.call_id, CallReservation.status)).all())
    assert statuses == {"forgotten": "expired", "recent": "active"}
    assert account(app, company_id)[1] == eur("2.10")
    end(client, headers, "forgotten", duration=10)  # a late end is still charged, the hold is gone already
    assert account(app, company_id) == (eur("9.93"), eur("2.10"))


@pytest.mark.parametrize("authorization", [None, "Bearer", "Bearer wrong-key", "Basic abc", "bearer " + "x" * 300])
def test_requests_without_a_valid_key_get_401(client, company, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    answer = start(client, headers)
    assert answer.status_code == 401 and answer.json["error"]["code"] == "unauthorized"


def test_a_request_notes_when_its_key_was_last_used(app, client, company):
    company_id, headers = company
    from core.calls.api_keys import company_api_keys

    with app.app_context():
        assert company_api_keys(db.session, company_id)[0].last_used_at is None
    assert start(client, headers).status_code == 200
    with app.app_context():
        assert company_api_keys(db.session, company_id)[0].last_used_at is not None


def test_a_revoked_key_stops_working(app, client, company):
    company_id, headers = company
    from core.calls.api_keys import company_api_keys, revoke_api_key

    with app.app_context():
        revoke_api_key(db.session, company_id, company_api_keys(db.session, company_id)[0].id)
        db.session.commit()
    assert start(client, headers).status_code == 401


def test_another_companys_call_is_404_and_not_charged(app, client, company, make_company):
    company_id, headers = company
    other_id, _ = make_company(balance=eur("10"))
    with app.app_context():
        _, other_key = create_api_key(db.session, other_id, "other")
        db.session.commit()
    start(client, headers, "shared-id")
    foreign = end(client, {"Authorization": f"Bearer {other_key}"}, "shared-id")
    assert foreign.status_code == 404 and foreign.json["error"]["code"] == "call_not_found"
    assert account(app, other_id) == (eur("10"), 0)


@pytest.mark.parametrize(
    ("path", "body", "code"),
    [("/api/v1/calls/c1/end", {"duration_seconds": -1}, "invalid_duration"),
     ("/api/v1/calls/c1/end", {"duration_seconds": 10**9}, "invalid_duration"),
     ("/api/v1/calls/c1/end", {"duration_seconds": 12.5}, "invalid_duration"),
     ("/api/v1/calls/c1/end", {"duration_seconds": True}, "invalid_duration"),
     ("/api/v1/calls/c1/end", {"duration_seconds": "61"}, "invalid_duration"),
     ("/api/v1/calls/c1/end", {"duration_seconds": 5, "ended_at": "yesterday"}, "invalid_timestamp"),
     ("/api/v1/calls/c1/start", {}, "invalid_timestamp"),
     ("/api/v1/calls/c1/start", {"started_at": "1970-01-01T00:00:00Z"}, "invalid_timestamp"),
     ("/api/v1/calls/c1/start", {"started_at": "2026-11-21T10:11:00Z"}, "invalid_timestamp"),  # ahead of the clock
     ("/api/v1/calls/c1/start", {"started_at": "2026-11-19T10:04:00Z"}, "invalid_timestamp"),  # before any call
     ("/api/v1/calls/c1/start", {"started_at": START, "to": 49}, "invalid_number"),
     ("/api/v1/calls/c1/start", [1, 2], "invalid_json"),
     ("/api/v1/calls/bad%20id!/start", {"started_at": START}, "invalid_call_id")],
)
def test_bad_input_answers_422_with_a_stable_code_and_changes_nothing(app, client, company, path, body, code):
    company_id, headers = company
    answer = client.post(path, json=body, headers=headers)
    assert answer.status_code == 422 and answer.json["error"]["code"] == code
    assert account(app, company_id) == (eur("10"), 0)


def test_malformed_json_and_end_before_start_answer_422(app, client, company):
    company_id, headers = company
    broken = client.post("/api/v1/calls/c1/end", data="{not json", headers={**headers, "Content-Type": "application/json"})
    assert broken.status_code == 422 and broken.json["error"]["code"] == "invalid_json"
    start(client, headers)
    early = end(client, headers, ended_at="2026-11-21T09:59:00Z")
    assert early.status_code == 422 and early.json["error"]["code"] == "end_before_start"
    assert account(app, company_id) == (eur("10"), eur("2.10"))


def test_unknown_api_paths_answer_json(client, company):
    _, headers = company
    answer = client.get("/api/v1/calls/c1/start", headers=headers)
    assert answer.status_code == 405 and answer.json["error"]["code"] == "method_not_allowed"


def test_sixteen_clients_ending_calls_over_http_end_with_the_exact_balance(app, company):
    """Real HTTP on loopback, a threaded server, 16 clients each ending 10 calls for one company."""
    company_id, headers = company
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    barrier, failures = threading.Barrier(16), []

    def client_thread(number):
        connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=30)
        barrier.wait()
        for i in range(10):
            body = json.dumps({"duration_seconds": 10 + number})
            connection.request("POST", f"/api/v1/calls/t{number}-{i}/end", body=body,
                               headers={**headers, "Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                failures.append(response.status)
        connection.close()

    threads = [threading.Thread(target=client_thread, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    server.shutdown()
    assert failures == []
    expected = eur("10") - sum(10 * (10 + n) * 70 for n in range(16))  # 70 units a second at 0.42 €/min
    assert account(app, company_id) == (expected, 0)
    with app.app_context():
        assert verify_ledger(db.session) == []


def test_admins_create_a_key_shown_once_and_revoke_it(app, client, make_company):
    company_id, email = make_company()
    log_in(client, email)
    page = client.get("/business/settings/api-keys")
    created = client.post("/business/settings/api-keys", data={"name": "Telefonanlage", "csrf_token": csrf_token_from(page.text)})
    assert created.status_code == 201 and "nur einmal angezeigt" in created.text
    key = created.text.split("<code>")[1].split("</code>")[0]
    assert key.startswith("pbk_")
    listing = client.get("/business/settings/api-keys").text
    assert key not in listing and key[:10] in listing and "Telefonanlage" in listing
    assert start(client, {"Authorization": f"Bearer {key}"}).status_code == 402  # valid key, no money
    key_id = listing.split("/business/settings/api-keys/")[1].split("/revoke")[0]
    revoked = client.post(f"/business/settings/api-keys/{key_id}/revoke", data={"csrf_token": csrf_token_from(listing)})
    assert revoked.status_code == 303
    assert start(client, {"Authorization": f"Bearer {key}"}).status_code == 401


def test_members_cannot_create_keys_and_other_companies_keys_are_404(app, client, make_company):
    _, member_email = make_company(member=True)
    other_id, _ = make_company()
    with app.app_context():
        other_key, _ = create_api_key(db.session, other_id, "theirs")
        db.session.commit()
        other_key_id = other_key.id
    log_in(client, member_email)
    page = client.get("/business/settings/api-keys").text
    token = csrf_token_from(page)
    assert client.post("/business/settings/api-keys", data={"name": "x", "csrf_token": token}).status_code == 403
    assert "theirs" not in page
    assert client.post(f"/business/settings/api-keys/{other_key_id}/revoke", data={"csrf_token": token}).status_code == 403


def test_an_admin_gets_404_for_another_companys_key_and_422_for_an_empty_name(app, client, make_company):
    _, email = make_company()
    other_id, _ = make_company()
    with app.app_context():
        other_key, _ = create_api_key(db.session, other_id, "theirs")
        db.session.commit()
        other_key_id = other_key.id
    log_in(client, email)
    token = csrf_token_from(client.get("/business/settings/api-keys").text)
    assert client.post(f"/business/settings/api-keys/{other_key_id}/revoke", data={"csrf_token": token}).status_code == 404
    assert client.post("/business/settings/api-keys", data={"name": "", "csrf_token": token}).status_code == 422


def test_the_simulator_drives_the_api(app, make_company):
    company_id, email = make_company(balance=eur("50"))
    result = app.test_cli_runner().invoke(args=["calls", "simulate", "--company", email, "--count", "5", "--seed", "3"])
    assert result.exit_code == 0 and "5 calls charged, 0 refused" in result.output
    with app.app_context():
        assert len(db.session.scalars(select(CallCharge).where(CallCharge.company_id == company_id)).all()) == 5
    assert account(app, company_id)[0] < eur("50")


def test_naive_timestamps_are_taken_as_utc(app, client, company):
    _, headers = company
    start(client, headers, "naive", started_at="2026-11-21T10:00:00")
    with app.app_context():
        assert db.session.scalar(select(CallReservation.started_at)) == datetime(2026, 11, 21, 10)


# What one start and its end send at most, BEGIN, COMMIT and the pool's pings included (see
# tests/round_trips.py). Each: the pool's ping, the API key, one read of the call, then the writes
# in one transaction (a start: the hold and the reservation; an end: the reservation captured, the
# balance, the ledger row and the call charge). psycopg sends BEGIN before the first read, sqlite3
# before the first write: the same sum on both.
MOST_ROUND_TRIPS_OF_A_START_AND_ITS_END = 16


def test_a_start_and_its_end_send_no_more_statements_than_their_work_needs(app, client, company):
    """A regression guard: the bound is what the code achieved; more is a change to look at."""
    _, headers = company
    start(client, headers, "warm-up")  # the key's "last used" is written once a minute: not below
    end(client, headers, "warm-up", ended_at="2026-11-21T10:01:01Z")
    with app.app_context():
        engine = db.engine
    with counting_round_trips(engine, pre_ping=app.config["SQLALCHEMY_ENGINE_OPTIONS"]["pool_pre_ping"]) as sent:
        assert start(client, headers, to="+49301234567").json["reservation"] == "2.1000"
        assert end(client, headers, ended_at="2026-11-21T10:01:01Z").json["balance_after"] == "9.1460"
    assert sum(sent.values()) <= MOST_ROUND_TRIPS_OF_A_START_AND_ITS_END, dict(sent)
    assert sent["PING"] == 2 and sent["COMMIT"] == 2, dict(sent)  # one connection, one transaction each
