"""Every staff page, admin page and API endpoint, called by the wrong community and roles.

ROUTES says how to call each route and who its rightful caller is. The first test fails
when the app has a route under /staff, /admin or /api/v1 that ROUTES does not know, so a
new route cannot ship without its scoping case. Each case is then called by staff of
community A (the owner of everything the URLs name), staff of community B, a volunteer,
merchant staff, an admin and an anonymous visitor (and, for the volunteers' and
merchants' API, a volunteer and merchant staff of B): the wrong ones are refused, see no
data of A and change nothing of A.
"""

import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
import sqlalchemy as sa

import ledger
from ledger.clock import utcnow
from merchants import items, redemptions, settlement
from merchants.models import Merchant, merchant_address
from pointsmall.auth.models import ApiToken
from pointsmall.auth.service import create_token
from pointsmall.core import clock
from pointsmall.earning import activities, awards, tiers
from pointsmall.earning.models import Award
from pointsmall.earning.rules import activity_types
from pointsmall.extensions import db
from pointsmall.jobs.models import BackgroundJob
from pointsmall.people.communities import Community, issuance_address
from pointsmall.people.models import Volunteer, volunteer_address
from tests.builders import (
    build_admin,
    build_community,
    build_merchant_staff,
    build_staff,
    build_volunteer,
    joined_to,
    new_phone,
)
from tests.core import task_routes

STAFF, ADMIN, VOLUNTEER, MERCHANT = ("staff",), ("admin",), ("volunteer",), ("merchant",)
ANYONE = ("volunteer", "merchant", "staff", "admin")
PREFIXES = ("/staff/", "/admin/", "/api/v1/")
LOGIN = "redirect to /login"


@dataclass(frozen=True)
class Case:
    """How to call a route, who may, and what the rightful caller gets."""

    roles: tuple[str, ...]
    ok: int
    # The caller everything in the URL belongs to; None: any caller of an allowed role.
    owner: str | None = "staff"
    # What a caller of the right role but not the owner gets (staff of community B, ...):
    # None when the route names an object of A (then 404); else the status of doing it
    # in their own community.
    other: int | None = None
    query: str = ""
    body: Callable[["World"], dict] | None = None
    headers: Callable[["World"], dict] | None = None
    # Overrides of the URL's arguments, by world attribute.
    args: dict[str, str] = field(default_factory=dict)
    # The owner's answer shows A's data, so that its absence from the others' means something.
    shows_a: bool = False


def volunteer_form(w: "World") -> dict:
    return {"name": "改过的名字", "phone": w.volunteer_phone, "grid_id": w.micro_a,
            "joined_on": "2023-03-01"}


def item_form(w: "World") -> dict:
    return {"merchant_id": w.ids["merchant_id"], "name": "新的商品", "category": "food",
            "price": "8", "min_tier": "", "active": "y"}


def days_ago(days: int) -> str:
    return (clock.local_today() - timedelta(days=days)).isoformat()


def import_file(w: "World") -> dict:
    sheet = f"姓名,手机号,微网格,加入日期\n导入的人,{new_phone()},{w.micro_a_name},2024-01-02\n"
    return {"file": (io.BytesIO(sheet.encode("utf-8")), "volunteers.csv")}


RULES_FORM = {"daily_cap": "", "monthly_cap": "", "approval_points": "5000",
              "approval_people": "200", "expiry_mode": "never", "expiry_months": "12",
              "expiry_month": "12", "expiry_day": "31", "tier_window_days": "365",
              "merit_per_year": "10"}

EXPORT_TABLES = ("volunteers", "activities", "attendance", "awards", "redemptions",
                 "statements", "journal", *task_routes.EXPORT_TABLES)

ROUTES: dict[tuple[str, str], Case] = {
    # volunteers and grids
    ("GET", "/staff/volunteers"): Case(STAFF, 200, other=200, query="?grid={micro_a}",
                                       shows_a=True),
    ("GET", "/staff/volunteers/new"): Case(STAFF, 200, other=200, shows_a=True),
    ("POST", "/staff/volunteers/new"): Case(STAFF, 200, other=422, body=lambda w: {
        "name": "新来的", "phone": new_phone(), "grid_id": w.micro_a,
        "joined_on": "2024-01-02"}),
    ("GET", "/staff/volunteers/<int:volunteer_id>"): Case(STAFF, 200, shows_a=True),
    ("POST", "/staff/volunteers/<int:volunteer_id>"): Case(STAFF, 302, body=volunteer_form),
    ("POST", "/staff/volunteers/<int:volunteer_id>/status/<status>"): Case(STAFF, 302),
    ("POST", "/staff/volunteers/<int:volunteer_id>/reset-password"): Case(STAFF, 200),
    ("GET", "/staff/volunteers/export.csv"): Case(STAFF, 200, other=200, shows_a=True),
    ("GET", "/staff/volunteers/import"): Case(STAFF, 200, other=200),
    ("GET", "/staff/volunteers/import/template.csv"): Case(STAFF, 200, other=200),
    # Another community's micro-grid in the file is a refused row, and nothing is imported.
    ("POST", "/staff/volunteers/import"): Case(STAFF, 302, other=422, body=import_file),
    ("GET", "/staff/grids"): Case(STAFF, 200, other=200, shows_a=True),
    ("POST", "/staff/grids"): Case(STAFF, 302, other=422, body=lambda w: {
        "name": "新网格", "parent_id": w.grid_a}),
    # activities, awards, adjustments, tiers
    ("GET", "/staff/activities"): Case(STAFF, 200, other=200, shows_a=True),
    ("POST", "/staff/activities"): Case(STAFF, 302, other=422, body=lambda w: {
        "type_id": w.activity_type_id, "title": "新活动", "place": "广场", "day": days_ago(-1),
        "start": "09:00", "end": "11:00"}),
    ("GET", "/staff/activities/<int:activity_id>"): Case(STAFF, 200, shows_a=True),
    ("POST", "/staff/activities/<int:activity_id>/attendance"): Case(
        STAFF, 302, body=lambda w: {"volunteer_id": str(w.ids["volunteer_id"]), "present": "0"}),
    ("POST", "/staff/activities/<int:activity_id>/sheet"): Case(STAFF, 302),
    ("POST", "/staff/activities/<int:activity_id>/award"): Case(
        STAFF, 302, args={"activity_id": "fresh_activity"}),
    ("POST", "/staff/adjustments"): Case(STAFF, 302, other=422, body=lambda w: {
        "adj-phone": w.volunteer_phone, "adj-points": "5", "adj-reason": "测试调整"}),
    ("GET", "/staff/adjustments/<int:adjustment_id>"): Case(
        STAFF, 200, args={"adjustment_id": "pending_adjustment"}, shows_a=True),
    ("POST", "/staff/adjustments/<int:adjustment_id>/<verdict>"): Case(
        STAFF, 302, args={"adjustment_id": "pending_adjustment"}),
    ("POST", "/staff/award-items/<int:award_id>/reverse"): Case(STAFF, 302, body=lambda w: {
        "reason": "记错了"}),
    ("GET", "/staff/awards"): Case(STAFF, 200, other=200, shows_a=True),
    ("GET", "/staff/awards/<int:batch_id>"): Case(STAFF, 200, shows_a=True),
    ("POST", "/staff/awards/<int:batch_id>/<verdict>"): Case(
        STAFF, 302, args={"batch_id": "pending_batch"}),
    ("GET", "/staff/audit"): Case(STAFF, 200, other=200, shows_a=True),
    ("GET", "/staff/tiers"): Case(STAFF, 200, other=200),
    ("POST", "/staff/tiers"): Case(STAFF, 200, other=200, body=lambda w: {
        "t-csrf_token": "-", "t-bronze": "10", "t-silver": "20", "t-gold": "30"}),
    ("POST", "/staff/evaluations"): Case(STAFF, 302, other=302, body=lambda w: {
        "e-name": "新评定", "e-start": days_ago(30), "e-end": days_ago(1)}),
    ("GET", "/staff/evaluations/<int:evaluation_id>"): Case(STAFF, 200, shows_a=True),
    # the marketplace
    ("GET", "/staff/market/"): Case(STAFF, 200, other=200, shows_a=True),
    ("POST", "/staff/market/"): Case(STAFF, 302, other=302, body=lambda w: {
        "m-csrf_token": "-", "m-name": "新商户", "m-kind": "partner"}),
    ("GET", "/staff/market/items/new"): Case(STAFF, 200, other=200, shows_a=True),
    # Another community's merchant in the form is refused on the form's page.
    ("POST", "/staff/market/items/new"): Case(STAFF, 302, other=303, body=item_form),
    ("GET", "/staff/market/items/<int:item_id>"): Case(STAFF, 200, shows_a=True),
    ("POST", "/staff/market/items/<int:item_id>"): Case(STAFF, 302, body=item_form),
    ("POST", "/staff/market/items/<int:item_id>/review/<verdict>"): Case(
        STAFF, 302, args={"item_id": "proposed_item"}),
    ("GET", "/staff/market/redemptions"): Case(STAFF, 200, other=200, shows_a=True),
    ("POST", "/staff/market/redemptions/<int:redemption_id>/refund"): Case(
        STAFF, 302, body=lambda w: {"reason": "退回测试"}),
    ("GET", "/staff/market/merchants/<int:merchant_id>/settle"): Case(STAFF, 200, shows_a=True),
    ("POST", "/staff/market/merchants/<int:merchant_id>/settle"): Case(
        STAFF, 302, body=lambda w: {"start": days_ago(20), "end": days_ago(15)}),
    ("GET", "/staff/market/statements/<int:statement_id>"): Case(STAFF, 200, shows_a=True),
    # exports: every table of the community (called as CSV; XLSX is the same view)
    ("GET", "/staff/exports"): Case(STAFF, 200, other=200),
    **{("GET", f"/staff/exports/{table}.<any(csv, xlsx):fmt>"): Case(
        STAFF, 200, other=200, shows_a=True) for table in EXPORT_TABLES},
    ("GET", "/admin/communities/<int:community_id>/exports"): Case(ADMIN, 200, owner="admin"),
    **{("GET", f"/admin/communities/<int:community_id>/exports/{table}.<any(csv, xlsx):fmt>"):
       Case(ADMIN, 200, owner="admin", shows_a=True) for table in EXPORT_TABLES},
    # dashboards: a community's own figures; the district's for the admin
    ("GET", "/staff/dashboard"): Case(STAFF, 200, other=200, shows_a=True),
    ("GET", "/admin/dashboard"): Case(ADMIN, 200, owner="admin", shows_a=True),
    ("GET", "/admin/communities/<int:community_id>/dashboard"): Case(ADMIN, 200, owner="admin",
                                                                     shows_a=True),
    # the monthly report: the page names the community; the PDF's text is compressed, so
    # tests/reports/test_monthly_report.py reads it for whose data it holds
    ("GET", "/staff/reports/monthly"): Case(STAFF, 200, other=200, shows_a=True),
    ("GET", "/staff/reports/monthly.pdf"): Case(STAFF, 200, other=200),
    ("GET", "/admin/communities/<int:community_id>/reports/monthly"): Case(
        ADMIN, 200, owner="admin", shows_a=True),
    ("GET", "/admin/communities/<int:community_id>/reports/monthly.pdf"): Case(
        ADMIN, 200, owner="admin"),
    # admin pages
    ("GET", "/admin/communities"): Case(ADMIN, 200, owner="admin", shows_a=True),
    ("POST", "/admin/communities"): Case(ADMIN, 302, owner="admin", body=lambda w: {
        "c-csrf_token": "-", "c-name": "新社区", "c-district": "新街道"}),
    ("GET", "/admin/audit"): Case(ADMIN, 200, owner="admin"),
    ("GET", "/admin/communities/<int:community_id>/rules"): Case(ADMIN, 200, owner="admin",
                                                                 shows_a=True),
    ("POST", "/admin/communities/<int:community_id>/rules"): Case(
        ADMIN, 302, owner="admin", body=lambda w: RULES_FORM),
    ("POST", "/admin/communities/<int:community_id>/rules/rotate-secret"): Case(
        ADMIN, 302, owner="admin"),
    # the staff API
    ("GET", "/api/v1/volunteers"): Case(STAFF, 200, other=200, query="?grid_id={micro_a}",
                                        shows_a=True),
    ("POST", "/api/v1/volunteers"): Case(STAFF, 201, other=422, body=lambda w: {
        "name": "新来的", "phone": new_phone(), "grid_id": w.micro_a}),
    ("GET", "/api/v1/volunteers/<id:volunteer_id>"): Case(STAFF, 200, shows_a=True),
    ("PATCH", "/api/v1/volunteers/<id:volunteer_id>"): Case(STAFF, 200, body=lambda w: {
        "name": "改过的名字"}),
    ("POST", "/api/v1/volunteers/<id:volunteer_id>/status"): Case(STAFF, 200, body=lambda w: {
        "status": "suspended"}),
    ("POST", "/api/v1/volunteers/<id:volunteer_id>/reset-password"): Case(STAFF, 200),
    ("GET", "/api/v1/grids"): Case(STAFF, 200, other=200, shows_a=True),
    # everyone's API
    ("GET", "/api/v1/me"): Case(ANYONE, 200, owner=None),
    ("DELETE", "/api/v1/auth/tokens/<id:token_id>"): Case(ANYONE, 204),
    # the earning API for staff
    ("GET", "/api/v1/staff/activities"): Case(STAFF, 200, other=200, shows_a=True),
    ("POST", "/api/v1/staff/activities"): Case(STAFF, 201, other=422, body=lambda w: {
        "type_id": w.activity_type_id, "title": "新活动", "starts_at": "2030-01-01T01:00:00",
        "ends_at": "2030-01-01T03:00:00"}),
    ("GET", "/api/v1/staff/activities/<id:activity_id>/attendance"): Case(STAFF, 200),
    ("POST", "/api/v1/staff/activities/<id:activity_id>/attendance"): Case(
        STAFF, 200, body=lambda w: {"volunteer_ids": [w.ids["volunteer_id"]], "present": False}),
    ("POST", "/api/v1/staff/activities/<id:activity_id>/award"): Case(
        STAFF, 201, args={"activity_id": "fresh_activity"}, body=lambda w: {},
        headers=lambda w: {"Idempotency-Key": "scoping-award"}),
    ("GET", "/api/v1/staff/award-batches"): Case(STAFF, 200, other=200, shows_a=True),
    ("POST", "/api/v1/staff/award-batches/<id:batch_id>/approve"): Case(
        STAFF, 200, args={"batch_id": "pending_batch"}),
    ("POST", "/api/v1/staff/award-batches/<id:batch_id>/reject"): Case(
        STAFF, 200, args={"batch_id": "pending_batch"}),
    ("POST", "/api/v1/staff/awards/<id:award_id>/reverse"): Case(STAFF, 200, body=lambda w: {
        "reason": "记错了"}),
    ("POST", "/api/v1/staff/adjustments"): Case(STAFF, 201, body=lambda w: {
        "volunteer_id": w.ids["volunteer_id"], "points": 5, "reason": "测试调整"},
        headers=lambda w: {"Idempotency-Key": "scoping-adjust"}),
    ("POST", "/api/v1/staff/adjustments/<id:adjustment_id>/approve"): Case(
        STAFF, 200, args={"adjustment_id": "pending_adjustment"}),
    ("POST", "/api/v1/staff/adjustments/<id:adjustment_id>/reject"): Case(
        STAFF, 200, args={"adjustment_id": "pending_adjustment"}),
    ("POST", "/api/v1/staff/tiers/preview"): Case(STAFF, 200, other=200, body=lambda w: {
        "bronze": 10, "silver": 20, "gold": 30}),
    ("PUT", "/api/v1/staff/tiers/thresholds"): Case(STAFF, 200, other=200, body=lambda w: {
        "bronze": 10, "silver": 20, "gold": 30}),
    ("GET", "/api/v1/staff/leaderboard"): Case(STAFF, 200, other=200,
                                               query="?start=2020-01-01&end=2099-12-31",
                                               shows_a=True),
    ("POST", "/api/v1/staff/evaluations"): Case(STAFF, 201, other=201, body=lambda w: {
        "name": "新评定", "start": "2024-01-01", "end": "2024-12-31"}),
    ("GET", "/api/v1/staff/evaluations/<id:evaluation_id>"): Case(STAFF, 200, shows_a=True),
    # the volunteers' API
    ("GET", "/api/v1/me/history"): Case(VOLUNTEER, 200, owner="volunteer", other=200,
                                        shows_a=True),
    ("GET", "/api/v1/me/tier"): Case(VOLUNTEER, 200, owner="volunteer", other=200),
    ("GET", "/api/v1/activities"): Case(VOLUNTEER, 200, owner="volunteer", other=200,
                                        shows_a=True),
    ("POST", "/api/v1/activities/<id:activity_id>/sign-up"): Case(
        VOLUNTEER, 200, owner="volunteer", args={"activity_id": "open_activity"}),
    ("POST", "/api/v1/check-ins"): Case(VOLUNTEER, 201, owner="volunteer", other=422,
                                        body=lambda w: {"token": w.check_in_token}),
    ("GET", "/api/v1/items"): Case(VOLUNTEER, 200, owner="volunteer", other=200, shows_a=True),
    ("GET", "/api/v1/items/<id:item_id>"): Case(VOLUNTEER, 200, owner="volunteer",
                                                 shows_a=True),
    ("GET", "/api/v1/redemptions"): Case(VOLUNTEER, 200, owner="volunteer", other=200,
                                         shows_a=True),
    ("POST", "/api/v1/redemptions"): Case(
        VOLUNTEER, 201, owner="volunteer", body=lambda w: {"item_id": w.ids["item_id"]},
        headers=lambda w: {"Idempotency-Key": "scoping-redeem"}),
    ("POST", "/api/v1/redemptions/<id:redemption_id>/cancel"): Case(
        VOLUNTEER, 200, owner="volunteer", args={"redemption_id": "reserved"}),
    # the merchants' API
    ("GET", "/api/v1/merchant/redemptions/<code>"): Case(MERCHANT, 200, owner="merchant",
                                                         shows_a=True),
    ("POST", "/api/v1/merchant/redemptions/<code>/confirm"): Case(MERCHANT, 200,
                                                                  owner="merchant"),
    ("POST", "/api/v1/merchant/redemptions/<code>/refund"): Case(
        MERCHANT, 200, owner="merchant", args={"code": "fulfilled_code"},
        body=lambda w: {"reason": "退回测试"}),
    ("GET", "/api/v1/merchant/statements"): Case(MERCHANT, 200, owner="merchant", other=200),
    ("GET", "/api/v1/merchant/statement"): Case(MERCHANT, 200, owner="merchant", other=200,
                                                shows_a=True),
}

# Routes under the prefixes that are not a user's, with the reason.
NOT_SCOPED = {
    ("POST", "/api/v1/auth/tokens"): "signing in: anyone may try, and is limited",
    ("POST", "/api/v1/platform/task-completions"): "the grid platform signs it (HMAC), "
                                                   "tested in the platform's tests",
}
# The task board's routes (tests/task_routes.py).
ROUTES.update(task_routes.routes())
NOT_SCOPED.update(task_routes.NOT_SCOPED)

ROLE = {"staff": "staff", "other_staff": "staff", "volunteer": "volunteer",
        "other_volunteer": "volunteer", "merchant": "merchant", "other_merchant": "merchant",
        "admin": "admin"}


def callers_of(case: Case) -> list[str]:
    callers = ["staff", "other_staff", "volunteer", "merchant", "admin", "anonymous"]
    if "volunteer" in case.roles:
        callers.append("other_volunteer")
    if "merchant" in case.roles:
        callers.append("other_merchant")
    return callers


@dataclass(frozen=True)
class World:
    """Community A with everything a route can name, community B, and the callers.

    Plain values only: it outlives the session that built it.
    """

    ids: dict[str, int]  # by URL argument name, and by the names Case.args use
    codes: dict[str, str]  # redemption codes: "reserved_code", "fulfilled_code"
    a_id: int
    grid_a: int
    micro_a: int
    micro_a_name: str
    volunteer_phone: str
    activity_type_id: int
    check_in_token: str
    markers_of_a: tuple[str, ...]
    own: dict[str, tuple[str, ...]]  # markers that are the caller's own business
    tokens: dict[str, str]  # caller -> raw bearer token
    sessions: dict[str, str]  # caller -> the id Flask-Login keeps in the session

    def argument(self, name: str, case: Case):
        key = case.args.get(name, name)
        if name == "code":
            return self.codes[case.args.get(name, "reserved_code")]
        if name == "token":
            return self.check_in_token
        return ({"status": "suspended", "verdict": "approve", "fmt": "csv"}.get(name)
                or self.ids[key])

    def markers(self, caller: str) -> list[str]:
        """Text that shows data of community A that `caller` has no business seeing."""
        return [m for m in self.markers_of_a if m not in self.own.get(caller, ())]


def build_world() -> World:
    a, b = build_community("甲社区"), build_community("乙社区")
    staff = build_staff(a, name="工作人员张")
    checker = build_staff(a, name="工作人员李")
    volunteer = build_volunteer(a, name="王小明", points=500)
    merchant = items.create_merchant(db.session, a.id, name="老街面馆")
    item = items.create_item(db.session, merchant.id, {
        "name": "红烧牛肉面", "category": "food", "price": 10, "stock": 5})
    proposed = items.create_item(db.session, merchant.id, {
        "name": "酸辣粉", "category": "food", "price": 12}, proposed_by=staff.id)
    merchant_user = build_merchant_staff(a, merchant=merchant)
    redeemer = redemptions.Redeemer(volunteer.id, volunteer.account("POINTS"), "王**", a.id)
    fulfilled = redemptions.reserve(db.session, redeemer, item.id, 1, key="scoping-1")
    redemptions.confirm(db.session, merchant.id, fulfilled.code, confirmed_by=merchant_user.id)
    reserved = redemptions.reserve(db.session, redeemer, item.id, 1, key="scoping-2")
    now = utcnow()
    statement = settlement.close_period(db.session, merchant.id, now - timedelta(days=40),
                                        now - timedelta(days=30), fen_per_point=0,
                                        closed_by=staff.id)
    kind = activity_types(db.session, a.id)[0]
    activity, fresh, open_now = (activities.create_activity(db.session, a.id, {
        "type_id": kind.id, "title": title, "starts_at": now + start,
        "ends_at": now + start + timedelta(hours=2)}, by=staff.id)
        for title, start in (("河道巡查", -timedelta(hours=3)), ("垃圾分类", -timedelta(hours=3)),
                             ("消防演练", -timedelta(minutes=10))))
    for each in (activity, fresh):
        activities.mark_present(db.session, each, [volunteer.id])
    batch = awards.award_activity(db.session, activity, None, key="scoping", by=staff.id)
    award = db.session.scalar(sa.select(Award).where(Award.batch_id == batch.id))
    pending = awards.create_batch(db.session, a.id, [awards.Line(volunteer.id, 6000, 0)],
                                  key="scoping-big", by=checker.id, title="大额奖励",
                                  type_code=kind.code)
    assert pending.status == "pending"
    waiting = awards.adjust(db.session, a.id, volunteer.id, 6000, reason="大额调整",
                            key="scoping-big-adjustment", by=checker.id)
    assert waiting.status == "pending"
    evaluation = tiers.evaluate(db.session, a.id, "甲年度评定", clock.local_today()
                                - timedelta(days=30), clock.local_today(), by=staff.id)
    token, _ = create_token(db.session, staff, "staff's app")
    task_ids, task_markers = task_routes.build_task_world(a, staff, volunteer)
    job = BackgroundJob(owner_id=staff.id, kind="export", params={}, twin_key="scoping",
                        title=f"{a.community.name} 流水", status="done", attempts=1, done=1,
                        filename="journal.csv", content_type="text/csv",
                        content=f"姓名\r\n{volunteer.name}\r\n".encode(), size=20,
                        finished_at=now, expires_at=now + timedelta(days=1))
    db.session.add(job)
    db.session.commit()
    callers = {"staff": staff, "other_staff": build_staff(b, name="乙社区工作人员"),
               "volunteer": volunteer.user,
               "other_volunteer": build_volunteer(b, name="乙社区志愿者").user,
               "merchant": merchant_user, "other_merchant": build_merchant_staff(b),
               "admin": build_admin()}
    tokens = {caller: create_token(db.session, user, "scoping")[1]
              for caller, user in callers.items()}
    db.session.commit()
    return World(
        ids={"volunteer_id": volunteer.id, "item_id": item.id, "proposed_item": proposed.id,
             "merchant_id": merchant.id, "redemption_id": fulfilled.id,
             "reserved": reserved.id, "statement_id": statement.id, "token_id": token.id,
             "activity_id": activity.id, "fresh_activity": fresh.id,
             "open_activity": open_now.id, "award_id": award.id, "batch_id": batch.id,
             "pending_batch": pending.id, "evaluation_id": evaluation.id,
             "pending_adjustment": waiting.id,
             "community_id": a.id, "job_id": job.id, **task_ids},
        codes={"reserved_code": reserved.code, "fulfilled_code": fulfilled.code},
        a_id=a.id, grid_a=a.grid.id, micro_a=a.micro.id, micro_a_name=a.micro.name,
        volunteer_phone=volunteer.phone, activity_type_id=kind.id,
        check_in_token=activities.check_in_token(open_now),
        markers_of_a=(a.community.name, volunteer.name, volunteer.phone, a.grid.name,
                      a.micro.name, merchant.name, item.name, proposed.name, activity.title,
                      open_now.title, evaluation.name,
                      f'/staff/awards/{batch.id}"', f'/staff/awards/{pending.id}"',
                      *task_markers),
        own={"volunteer": (volunteer.name, volunteer.phone, a.community.name),
             "merchant": (merchant.name, a.community.name)},
        tokens=tokens, sessions={caller: user.get_id() for caller, user in callers.items()})


@pytest.fixture(scope="module")
def built(base_app, engine):
    """Build the world once, in a transaction rolled back when the module is done."""
    with engine.connect() as connection:
        outer = connection.begin()
        with joined_to(base_app, connection):
            world = build_world()
        yield connection, world
        outer.rollback()


@pytest.fixture
def world_app(base_app, built):
    """The app and the world; whatever a test writes is rolled back after it."""
    connection, world = built
    savepoint = connection.begin_nested()
    with joined_to(base_app, connection) as app:
        yield app, world
    savepoint.rollback()


def snapshot(w: World) -> list:
    """Every row of community A, and its ledger balances: a refused call leaves them be."""
    merchants = sa.select(Merchant.id).where(Merchant.community_id == w.a_id)
    volunteers = sa.select(Volunteer.id).where(Volunteer.community_id == w.a_id)
    found = [db.session.execute(sa.select(Community.__table__).where(
        Community.id == w.a_id)).all()]
    for table in db.metadata.sorted_tables:
        columns = table.c
        if "community_id" in columns:
            where = columns.community_id == w.a_id
        elif "merchant_id" in columns:
            where = columns.merchant_id.in_(merchants)
        elif "volunteer_id" in columns:
            where = columns.volunteer_id.in_(volunteers)
        else:
            continue
        found.append(sorted(map(tuple, db.session.execute(sa.select(table).where(where))),
                            key=repr))
    addresses = [issuance_address(w.a_id, asset) for asset in ("POINTS", "MERIT")]
    addresses += [merchant_address(m) for m in db.session.scalars(merchants)]
    addresses += [volunteer_address(v, asset) for v in db.session.scalars(volunteers)
                  for asset in ("POINTS", "MERIT")]
    found.append(sorted(ledger.balances(db.session, addresses).values(), key=repr))
    found.append(db.session.execute(sa.select(ApiToken.id, ApiToken.revoked_at)
                                    .order_by(ApiToken.id)).all())
    found.append(db.session.scalar(sa.select(sa.func.count()).select_from(Community)))
    return found


def expected(case: Case, caller: str, api: bool):
    if caller == "anonymous":
        return 401 if api else LOGIN
    if ROLE[caller] not in case.roles:
        return 403
    if case.owner is None or caller == case.owner:
        return case.ok
    return 404 if case.other is None else case.other


def url_for_case(rule: str, case: Case, w: World) -> str:
    path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>",
                  lambda m: str(w.argument(m.group(1), case)), rule)
    return path + case.query.format(micro_a=w.micro_a)


def app_routes(app) -> set[tuple[str, str]]:
    return {(method, rule.rule) for rule in app.url_map.iter_rules()
            if rule.rule.startswith(PREFIXES)
            for method in rule.methods - {"HEAD", "OPTIONS"}}


def as_text(sent) -> str:
    return json.dumps(sent, ensure_ascii=False, default=lambda value: (
        value.getvalue().decode("utf-8") if isinstance(value, io.BytesIO) else str(value)))


def test_every_staff_admin_and_api_route_has_a_scoping_case(app):
    routes = app_routes(app)

    missing = routes - set(ROUTES) - set(NOT_SCOPED)
    assert not missing, f"routes without a scoping case in ROUTES: {sorted(missing)}"


@pytest.mark.parametrize("route, caller", [
    (route, caller) for route in sorted(ROUTES) for caller in callers_of(ROUTES[route])
], ids=lambda value: " ".join(value) if isinstance(value, tuple) else value)
def test_a_route_answers_only_its_rightful_caller(world_app, monkeypatch, route, caller):
    app, world = world_app
    if route not in app_routes(app):
        pytest.skip(f"{route[0]} {route[1]} is not a route of this app (any more?)")
    call_as(app, world, monkeypatch, route, ROUTES[route], caller)


def call_as(app, world: World, monkeypatch, route: tuple[str, str], case: Case,
            caller: str) -> None:
    """Call `route` as `caller`: only the rightful one succeeds, the others see nothing of A."""
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", False)
    method, rule = route
    api = rule.startswith("/api/")
    client, headers = app.test_client(), dict(case.headers(world) if case.headers else {})
    if caller != "anonymous" and api:
        headers["Authorization"] = f"Bearer {world.tokens[caller]}"
    elif caller != "anonymous":
        with client.session_transaction() as session:
            session["_user_id"] = world.sessions[caller]
    body = case.body(world) if case.body else None
    sent = as_text(body)
    before = snapshot(world)

    answer = client.open(url_for_case(rule, case, world), method=method, headers=headers,
                         **({"json": body} if api else {"data": body}))

    # A PDF is binary: decode leniently; the markers are looked for all the same.
    want, page = expected(case, caller, api), answer.get_data().decode("utf-8", "replace")
    if want == LOGIN:
        assert answer.status_code == 302, page
        assert answer.headers["Location"].startswith("/login")
    else:
        assert answer.status_code == want, page
    if answer.is_json and answer.data:
        page = json.dumps(answer.get_json(), ensure_ascii=False)  # unescaped, for the markers
        if answer.status_code >= 400:
            assert set(answer.get_json()) == {"code", "message", "errors"}
    if caller == case.owner:
        if case.shows_a:
            assert any(m in page for m in world.markers(caller)), "the check proves nothing"
        return
    assert snapshot(world) == before, "a refused call changed community A"
    leaked = [m for m in world.markers(caller) if m in page and m not in sent]
    assert not leaked, f"{caller} saw data of community A: {leaked}"
