"""The outbox of follow-up work (core.followups) on a plain session: a request is a row of the
requesting transaction, due after its commit, gone with its rollback; the sweep's reads."""

from datetime import timedelta

from sqlalchemy import event, select

from core.clock import utcnow
from core.followups import (
    Due, Followup, forget_followups, note_commit, overdue_followups, request_followup, take_due_followups,
)
from core.schema import FollowupOutbox


def rows(session) -> list[tuple[str, list[int]]]:
    return [tuple(row) for row in session.execute(select(FollowupOutbox.kind, FollowupOutbox.ids)
                                                  .order_by(FollowupOutbox.id))]


def dispatched(session) -> list[list[Due]]:
    """Listen as app.jobs does: what each ending transaction hands out."""
    handed: list[list[Due]] = []
    event.listen(session, "after_commit", note_commit)
    event.listen(session, "after_transaction_end", lambda s, t: handed.append(take_due_followups(s, t)))
    return handed


def test_a_request_is_written_in_its_transaction_and_handed_out_once_after_the_commit(session):
    handed = dispatched(session)
    request_followup(session, Followup.ISSUE_TOPUP_INVOICE, 41)
    request_followup(session, Followup.ISSUE_TOPUP_INVOICE, 41)  # the same request twice: once
    request_followup(session, Followup.SEND_EMAIL, 9)
    session.commit()
    [outbox_invoice, outbox_email] = session.scalars(select(FollowupOutbox.id).order_by(FollowupOutbox.id)).all()
    assert [due for due in handed if due] == [[Due(outbox_invoice, Followup.ISSUE_TOPUP_INVOICE, (41,)),
                                               Due(outbox_email, Followup.SEND_EMAIL, (9,))]]
    assert rows(session) == [("issue_topup_invoice", [41]), ("send_email", [9])]  # until the dispatcher forgets them
    session.commit()
    assert [due for due in handed if due] == [[Due(outbox_invoice, Followup.ISSUE_TOPUP_INVOICE, (41,)),
                                               Due(outbox_email, Followup.SEND_EMAIL, (9,))]]


def test_a_rolled_back_request_leaves_no_row_and_nothing_due(session):
    handed = dispatched(session)
    request_followup(session, Followup.SEND_EMAIL, 1)
    session.flush()
    session.rollback()
    session.commit()
    assert rows(session) == [] and not any(handed)


def test_the_sweep_sees_only_requests_older_than_its_cutoff_and_forgotten_ones_never(session):
    request_followup(session, Followup.RUN_AUTO_TOPUP, 3)
    request_followup(session, Followup.ISSUE_CREDIT_NOTE, 4)
    session.commit()
    assert overdue_followups(session, utcnow() - timedelta(minutes=1)) == []  # still within the grace
    later = utcnow() + timedelta(minutes=1)
    overdue = overdue_followups(session, later)
    assert [(due.kind, due.ids) for due in overdue] == [(Followup.RUN_AUTO_TOPUP, (3,)),
                                                        (Followup.ISSUE_CREDIT_NOTE, (4,))]
    forget_followups(session, [overdue[0].outbox_id])
    session.commit()
    assert [(due.kind, due.ids) for due in overdue_followups(session, later)] == [(Followup.ISSUE_CREDIT_NOTE, (4,))]


def test_a_request_in_a_rolled_back_savepoint_goes_with_it_and_the_outer_ones_stay(session):
    handed = dispatched(session)
    request_followup(session, Followup.SEND_EMAIL, 1)
    savepoint = session.begin_nested()
    request_followup(session, Followup.SEND_EMAIL, 2)
    session.flush()
    savepoint.rollback()
    session.commit()
    assert rows(session) == [("send_email", [1])]
    assert [[(due.kind, due.ids) for due in due_list] for due_list in handed if due_list] == [
        [(Followup.SEND_EMAIL, (1,))]]
