"""Every way points move in the earning half is in the audit log, whichever way it comes in:
the office page, the API, the grid platform's signed calls and the command line. A refused
action leaves neither an audit row nor a ledger row."""

import json
import re
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

import ledger
from ledger import utcnow
from pointsmall.core import clock
from pointsmall.core.audit import AuditEntry
from pointsmall.earning import activities, awards, platform
from pointsmall.earning.models import Adjustment, Award, AwardBatch
from pointsmall.earning.rules import activity_type, ensure_rules
from pointsmall.extensions import db
from pointsmall.people.communities import expired_address
from pointsmall.tasks import board
from tests.builders import bearer, csrf_token, enter_session

WAYS = ["page", "api"]


pytestmark = pytest.mark.usefixtures("ledger_stays_consistent")


@pytest.fixture
def checker(place, make_staff):
    """A second staff member of the same community."""
    return make_staff(place)


@pytest.fixture
def volunteer(place, make_volunteer):
    return make_volunteer(place, phone="13911112222", points=10)


@pytest.fixture
def activity(place):
    starts = utcnow() - timedelta(minutes=10)
    found = activities.create_activity(db.session, place.id, {
        "type_id": activity_type(db.session, place.id, "service").id, "title": "环境整治",
        "place": "社区广场", "starts_at": starts, "ends_at": starts + timedelta(hours=2),
        "points": 20, "merit": 20}, by=None)
    db.session.commit()
    return found


class Log:
    """The audit rows and ledger transactions written after it was made."""

    def __init__(self):
        self.audit_from = db.session.scalar(sa.select(sa.func.max(AuditEntry.id))) or 0
        self.ledger_from = db.session.scalar(sa.select(sa.func.max(ledger.Transaction.id))) or 0

    def rows(self) -> list[tuple]:
        db.session.expire_all()
        return [(e.action, e.actor_id, e.target, e.community_id) for e in db.session.scalars(
            sa.select(AuditEntry).where(AuditEntry.id > self.audit_from)
            .order_by(AuditEntry.id))]

    def entries(self) -> list[AuditEntry]:
        return list(db.session.scalars(sa.select(AuditEntry).where(
            AuditEntry.id > self.audit_from).order_by(AuditEntry.id)))

    def transactions(self) -> int:
        return db.session.scalar(sa.select(sa.func.count()).select_from(ledger.Transaction)
                                 .where(ledger.Transaction.id > self.ledger_from))

    def assert_nothing_written(self) -> None:
        assert self.rows() == []
        assert self.transactions() == 0


class Caller:
    """Staff member `user` signed in for one way in: an office page session or a token."""

    def __init__(self, way: str, client, user):
        self.way, self.client = way, client
        client.set_cookie("lang", "en")
        self.headers = {}
        if way == "page":
            enter_session(client, user)
        else:
            self.headers = bearer(user)

    def page(self, path: str, form: dict, *, prefix: str = "", read: str = "/staff/awards"):
        """Post `form` from the office pages (with the CSRF token of the page `read`)."""
        token = csrf_token(self.client.get(read).get_data(as_text=True))
        return self.client.post(path, data={f"{prefix}csrf_token": token, **form})

    def api(self, path: str, body: dict | None = None, **headers):
        return self.client.post(path, json=body, headers={**self.headers, **headers})


def batch_of(place) -> AwardBatch:
    return db.session.scalar(sa.select(AwardBatch).where(AwardBatch.community_id == place.id)
                             .order_by(AwardBatch.id.desc()))


def present(activity, *volunteers):
    activities.mark_present(db.session, activity, [v.id for v in volunteers])
    db.session.commit()


# Award batches


def award(caller, activity):
    if caller.way == "page":
        return caller.page(f"/staff/activities/{activity.id}/award", {"key": "k1"},
                           read=f"/staff/activities/{activity.id}")
    return caller.api(f"/api/v1/staff/activities/{activity.id}/award", {},
                      **{"Idempotency-Key": "k1"})


@pytest.mark.parametrize("way", WAYS)
def test_an_award_batch_is_audited_with_its_maker(way, client, place, staff, activity,
                                                  volunteer):
    present(activity, volunteer)
    caller = Caller(way, client, staff)
    log = Log()

    answer = award(caller, activity)

    assert answer.status_code in (201, 302)
    assert log.rows() == [("award.batch", staff.id, f"batch:{batch_of(place).id}", place.id)]
    assert log.transactions() == 1


@pytest.mark.parametrize("way", WAYS)
def test_a_refused_award_writes_no_audit_row_and_no_ledger_row(way, client, staff, activity):
    caller = Caller(way, client, staff)
    log = Log()  # nobody is marked present

    answer = award(caller, activity)

    assert answer.status_code == 422
    log.assert_nothing_written()


@pytest.fixture
def waiting(place, staff, activity, make_volunteer):
    """A batch over the approval limit, made by `staff`."""
    ensure_rules(db.session, place.id).approval_points = 30
    a, b = make_volunteer(place), make_volunteer(place)
    present(activity, a, b)
    batch = awards.award_activity(db.session, activity, None, key="big", by=staff.id)
    db.session.commit()
    assert batch.status == "pending"
    return batch


def decide_batch(caller, batch, verdict):
    if caller.way == "page":
        return caller.page(f"/staff/awards/{batch.id}/{verdict}", {})
    return caller.api(f"/api/v1/staff/award-batches/{batch.id}/{verdict}")


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("verdict", ["approve", "reject"])
def test_deciding_a_batch_is_audited_with_the_checker(way, verdict, client, place, checker,
                                                     waiting):
    caller = Caller(way, client, checker)
    log = Log()

    answer = decide_batch(caller, waiting, verdict)

    assert answer.status_code in (200, 302)
    assert log.rows() == [(f"award.{verdict}", checker.id, f"batch:{waiting.id}", place.id)]
    assert log.transactions() == (2 if verdict == "approve" else 0)


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("verdict", ["approve", "reject"])
def test_the_maker_deciding_their_own_batch_writes_no_audit_row_and_no_ledger_row(
        way, verdict, client, staff, waiting):
    caller = Caller(way, client, staff)
    log = Log()

    answer = decide_batch(caller, waiting, verdict)

    assert answer.status_code == 403
    log.assert_nothing_written()


# Reversals


@pytest.fixture
def posted(place, staff, activity, volunteer) -> Award:
    present(activity, volunteer)
    batch = awards.award_activity(db.session, activity, None, key="award", by=staff.id)
    db.session.commit()
    return db.session.scalar(sa.select(Award).where(Award.batch_id == batch.id))


def reverse(caller, found, reason):
    if caller.way == "page":
        return caller.page(f"/staff/award-items/{found.id}/reverse", {"reason": reason},
                           read=f"/staff/awards/{found.batch_id}")
    return caller.api(f"/api/v1/staff/awards/{found.id}/reverse", {"reason": reason})


@pytest.mark.parametrize("way", WAYS)
def test_a_reversal_is_audited_with_who_reversed_it(way, client, place, checker, posted):
    caller = Caller(way, client, checker)
    log = Log()

    answer = reverse(caller, posted, "误记签到")

    assert answer.status_code in (200, 302)
    assert log.rows() == [("award.reverse", checker.id, f"award:{posted.id}", place.id)]
    assert log.entries()[0].detail["reason"] == "误记签到"
    assert log.transactions() == 1


@pytest.mark.parametrize("way", WAYS)
def test_a_refused_reversal_writes_no_audit_row_and_no_ledger_row(way, client, staff, posted):
    caller = Caller(way, client, staff)
    log = Log()

    answer = reverse(caller, posted, "   ")

    assert answer.status_code == 422
    log.assert_nothing_written()


# Adjustments


def adjust(caller, volunteer, points, key="a1"):
    if caller.way == "page":
        return caller.page("/staff/adjustments", {
            "adj-phone": "13911112222", "adj-points": str(points), "adj-reason": "协助登记",
            "key": key}, prefix="adj-")
    return caller.api("/api/v1/staff/adjustments", {
        "volunteer_id": volunteer.id, "points": points, "reason": "协助登记"},
        **{"Idempotency-Key": key})


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("points", [8, -4])
def test_a_grant_or_a_deduction_is_audited_with_who_made_it(way, points, client, place, staff,
                                                            volunteer):
    caller = Caller(way, client, staff)
    log = Log()

    answer = adjust(caller, volunteer, points)

    assert answer.status_code in (201, 302)
    assert log.rows() == [("points.adjust", staff.id, f"volunteer:{volunteer.id}", place.id)]
    assert log.entries()[0].detail["points"] == points
    assert log.transactions() == 1


@pytest.mark.parametrize("way", WAYS)
def test_a_refused_deduction_writes_no_audit_row_and_no_ledger_row(way, client, staff,
                                                                   volunteer):
    caller = Caller(way, client, staff)
    log = Log()

    answer = adjust(caller, volunteer, -11)

    assert answer.status_code in (409, 422)
    log.assert_nothing_written()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Adjustment).where(
        Adjustment.volunteer_id == volunteer.id)) == 0


@pytest.fixture
def asked(place, staff, volunteer) -> Adjustment:
    """An adjustment over the approval limit, asked for by `staff`."""
    found = awards.adjust(db.session, place.id, volunteer.id, 6000, reason="年度表彰",
                          key="big", by=staff.id)
    db.session.commit()
    assert found.status == "pending"
    return found


@pytest.mark.parametrize("way", WAYS)
def test_asking_for_an_adjustment_over_the_limit_is_audited(way, client, place, staff,
                                                            volunteer):
    caller = Caller(way, client, staff)
    log = Log()

    answer = adjust(caller, volunteer, 6000)

    assert answer.status_code in (202, 302)
    assert log.rows() == [("points.adjust_request", staff.id, f"volunteer:{volunteer.id}",
                           place.id)]
    assert log.transactions() == 0


def decide_adjustment(caller, found, verdict):
    if caller.way == "page":
        return caller.page(f"/staff/adjustments/{found.id}/{verdict}", {})
    return caller.api(f"/api/v1/staff/adjustments/{found.id}/{verdict}")


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("verdict", ["approve", "reject"])
def test_deciding_an_adjustment_is_audited_with_the_checker(way, verdict, client, place,
                                                           checker, volunteer, asked):
    caller = Caller(way, client, checker)
    log = Log()

    answer = decide_adjustment(caller, asked, verdict)

    assert answer.status_code in (200, 302)
    target = f"volunteer:{volunteer.id}"
    if verdict == "approve":
        assert log.rows() == [("points.adjust_approve", checker.id, target, place.id),
                              ("points.adjust", checker.id, target, place.id)]
        assert log.transactions() == 1
    else:
        assert log.rows() == [("points.adjust_reject", checker.id, target, place.id)]
        assert log.transactions() == 0


@pytest.mark.parametrize("way", WAYS)
def test_the_maker_deciding_their_own_adjustment_writes_no_audit_row_and_no_ledger_row(
        way, client, staff, asked):
    caller = Caller(way, client, staff)
    log = Log()

    answer = decide_adjustment(caller, asked, "approve")

    assert answer.status_code == 403
    log.assert_nothing_written()


# Evaluations


def evaluate(caller, name, end):
    if caller.way == "page":
        return caller.page("/staff/evaluations", {
            "e-name": name, "e-start": "2026-01-01", "e-end": end.isoformat()},
            prefix="e-", read="/staff/tiers")
    return caller.api("/api/v1/staff/evaluations", {
        "name": name, "start": "2026-01-01", "end": end.isoformat()})


@pytest.mark.parametrize("way", WAYS)
def test_freezing_an_evaluation_is_audited(way, client, place, staff, volunteer):
    caller = Caller(way, client, staff)
    log = Log()

    answer = evaluate(caller, "2026 H1", clock.local_today() - timedelta(days=1))

    assert answer.status_code in (201, 302)
    [row] = log.rows()
    assert row[:2] == ("tiers.evaluate", staff.id) and row[3] == place.id
    assert row[2].startswith("evaluation:")


@pytest.mark.parametrize("way", WAYS)
def test_a_refused_evaluation_writes_no_audit_row(way, client, staff, volunteer):
    caller = Caller(way, client, staff)
    log = Log()

    answer = evaluate(caller, "", clock.local_today() - timedelta(days=1))

    assert answer.status_code == 422
    log.assert_nothing_written()


# Checking a done task (核实评价)


def accept(caller, row):
    if caller.way == "page":
        return caller.page(f"/staff/task-assignments/{row.id}/accept", {"check-rating": "5"},
                           prefix="check-", read=f"/staff/tasks/{row.task_id}")
    return caller.api(f"/api/v1/staff/task-assignments/{row.id}/accept", {"rating": 5})


@pytest.mark.parametrize("way", WAYS)
def test_accepting_a_task_is_audited_with_its_award(way, client, place, staff, checker,
                                                    volunteer, make_task, make_done):
    task = make_task(place, staff, points=15)
    row = make_done(task, volunteer)
    caller = Caller(way, client, checker)
    log = Log()

    answer = accept(caller, row)

    assert answer.status_code in (200, 302)
    assert log.rows() == [
        ("award.batch", checker.id, f"batch:{batch_of(place).id}", place.id),
        ("task.accept", checker.id, f"task:{task.id}", place.id)]
    assert log.transactions() == 1


@pytest.mark.parametrize("way", WAYS)
def test_accepting_a_task_not_done_writes_no_audit_row_and_no_ledger_row(
        way, client, place, staff, volunteer, make_task):
    task = make_task(place, staff, points=15)
    row = board.claim_task(db.session, volunteer, task.id)
    db.session.commit()
    caller = Caller(way, client, staff)
    log = Log()

    answer = accept(caller, row)

    assert answer.status_code == 409
    log.assert_nothing_written()


# The grid platform (signed, no one signed in)


def signed(place, data: dict, *, secret: str | None = None) -> dict:
    body = json.dumps(data).encode()
    stamp = str(int(time.time()))
    secret = secret or ensure_rules(db.session, place.id).platform_secret
    return {"data": body, "content_type": "application/json", "headers": {
        "X-Timestamp": stamp, "X-Signature": platform.signature(secret, stamp, body)}}


def completion(place, volunteer) -> dict:
    return {"community_id": place.id, "task_id": "T-7", "volunteer_id": volunteer.id,
            "points": 12, "title": "上报占道经营"}


def test_a_platform_completion_is_audited_as_the_platform(client, place, volunteer):
    log = Log()

    first = client.post("/api/v1/platform/task-completions",
                        **signed(place, completion(place, volunteer)))
    again = client.post("/api/v1/platform/task-completions",
                        **signed(place, completion(place, volunteer)))

    assert (first.status_code, again.status_code) == (201, 200)
    assert log.rows() == [("award.batch", None, f"batch:{batch_of(place).id}", place.id)]
    assert log.entries()[0].detail["source"] == "platform"
    assert log.transactions() == 1


def test_a_badly_signed_completion_writes_no_audit_row_and_no_ledger_row(
        client, place, volunteer):
    log = Log()

    answer = client.post("/api/v1/platform/task-completions",
                         **signed(place, completion(place, volunteer), secret="0" * 64))

    assert answer.status_code == 401
    log.assert_nothing_written()


def platform_task(place) -> dict:
    return {"community_id": place.id, "task_id": "P-9", "title": "巡查消防通道",
            "grid_id": place.micro.id, "points": 10,
            "deadline": (utcnow() + timedelta(days=2)).isoformat() + "Z"}


def test_a_task_the_platform_creates_is_audited_as_the_platform(client, place):
    log = Log()

    answer = client.post("/api/v1/platform/tasks", **signed(place, platform_task(place)))

    assert answer.status_code == 201
    assert log.rows() == [("task.publish", None, f"task:{answer.get_json()['id']}", place.id)]
    assert log.entries()[0].detail["source"] == "platform"


def test_a_badly_signed_platform_task_writes_no_audit_row(client, place):
    log = Log()

    answer = client.post("/api/v1/platform/tasks",
                         **signed(place, platform_task(place), secret="0" * 64))

    assert answer.status_code == 401
    log.assert_nothing_written()


# Expiry from the command line


def test_the_expire_command_is_audited_as_the_system_with_its_counts(app, client, place, staff,
                                                                     make_volunteer):
    rules = ensure_rules(db.session, place.id)
    rules.expiry_mode, rules.expiry_months = "rolling", 12
    a, b = make_volunteer(place), make_volunteer(place)
    issuance = place.community.account("POINTS")
    for volunteer, amount in ((a, 40), (b, 15)):
        ledger.move(db.session, issuance, volunteer.account("POINTS"), amount,
                    key=f"old:{volunteer.id}", kind="award",
                    now=utcnow() - timedelta(days=400))
    db.session.commit()
    log = Log()

    first = app.test_cli_runner().invoke(args=["points", "expire"])

    assert first.exit_code == 0, first.output
    assert ledger.balance(db.session, expired_address(place.id)).posted == 55
    mine = [e for e in log.entries() if e.community_id == place.id]
    assert [(e.action, e.actor_id, e.target, e.address) for e in mine] == [
        ("points.expire", None, f"community:{place.id}", "cli")]
    assert (mine[0].detail["people"], mine[0].detail["points"]) == (2, 55)
    again = Log()
    app.test_cli_runner().invoke(args=["points", "expire"])
    assert [e for e in again.entries() if e.community_id == place.id] == []
    enter_session(client, staff)
    shown = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", client.get("/staff/audit").get_data(
        as_text=True)))
    assert "过期积分清零" in shown and "系统（命令行）" in shown
    assert place.community.name in shown and "人数: 2" in shown and "积分: 55" in shown
