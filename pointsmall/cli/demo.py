"""The demo deployment: two communities, fifty volunteers with history, staff, merchants.

Every demo sign-in uses the password `demo1234`.
"""

import random
from datetime import timedelta

import sqlalchemy as sa
import sqlalchemy.orm as so
from werkzeug.security import generate_password_hash

import ledger
from ledger import utcnow
from merchants import items, redemptions
from merchants.models import Item
from pointsmall.auth.models import User
from pointsmall.core.clock import local_today
from pointsmall.earning import activities, awards, rules
from pointsmall.people import communities
from pointsmall.people import service as volunteers
from pointsmall.reports.models import record_check
from pointsmall.tasks.demo import seed_tasks

PASSWORD = "demo1234"
COMMUNITIES = [
    ("渝能阳光社区", "五里店街道", {"阳光100网格": ["1栋微网格", "2栋微网格", "3栋微网格"],
                                   "南方上格林网格": ["A区微网格", "B区微网格"]}),
    ("锦华社区", "锦江街道", {"锦华一网格": ["东苑微网格", "西苑微网格"],
                              "锦华二网格": ["北苑微网格"]}),
]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = ["伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰",
         "娟", "涛", "明", "超", "秀兰", "霞", "平", "刚", "桂英", "建华", "玉兰"]
ACTIVITIES = [("社区网格巡查", "task"), ("垃圾分类宣传", "service"), ("主题党日活动", "party"),
              ("应急救护培训", "training"), ("微心愿认领", "wish"), ("网格员例会", "meeting")]
VOLUNTEERS = 50


def seed(session: so.Session) -> bool:
    """Seed the demo unless a community exists already; return whether anything was created."""
    if session.scalar(sa.select(communities.Community.id).limit(1)) is not None:
        return False
    rng = random.Random(2026)
    password_hash = generate_password_hash(PASSWORD)  # one hash: seeding stays fast
    made, micro_grids = [], []
    for name, district, grids in COMMUNITIES:
        community = communities.create_community(session, name, district)
        made.append(community)
        cells = []
        for grid_name, micros in grids.items():
            grid = communities.create_grid(session, community.id, grid_name)
            cells += [communities.create_grid(session, community.id, m, grid.id).id
                      for m in micros]
        micro_grids.append(cells)
    session.add(User(username="admin", name="区级管理员", role="admin",
                     password_hash=password_hash))
    for n, community in enumerate(made, start=1):
        session.add(User(username=f"staff{n}", name=f"社区工作人员{n}", role="staff",
                         community_id=community.id, password_hash=password_hash))
    partner = items.create_merchant(session, made[0].id, name="老街牛肉面", kind="partner",
                                    address="渝能广场 3 号", opening_hours="10:00-21:00",
                                    contact="023-6000 1234", serves_also=[made[1].id])
    market = items.create_merchant(session, made[0].id, name="渝能爱心超市", kind="charity",
                                   address="社区服务中心一楼",
                                   opening_hours="周二、周五 9:00-17:00")
    for merchant, username in ((partner, "merchant1"), (market, "market1")):
        session.add(User(username=username, name=merchant.name, role="merchant",
                         merchant_id=merchant.id, password_hash=password_hash))
    for merchant, name, category, price, stock, limit, tier in (
        (partner, "招牌牛肉面一碗", "food", 30, None, 4, None),
        (partner, "凉面 + 冰粉套餐", "food", 25, None, None, None),
        (partner, "金牌志愿者双人餐", "food", 120, 10, 1, "gold"),
        (market, "东北大米 5kg", "grocery", 60, 40, 2, None),
        (market, "菜籽油 1.8L", "grocery", 50, 30, 2, None),
        (market, "土鸡蛋 10 枚", "grocery", 20, 100, 4, None),
        (market, "当季水果礼盒", "grocery", 40, 20, 1, "bronze"),
        (market, "猪肉 500g", "grocery", 35, 25, 2, None),
    ):
        items.create_item(session, merchant.id, {
            "name": name, "category": category, "price": price, "stock": stock,
            "monthly_limit": limit, "min_tier": tier, "active": True})
    people: list[list] = [[], []]
    for n in range(1, VOLUNTEERS + 1):
        index = 0 if n <= 30 else 1
        volunteer, _ = volunteers.create_volunteer(session, made[index].id, {
            "name": rng.choice(SURNAMES) + rng.choice(GIVEN),
            "phone": f"138{n:08d}",
            "grid_id": rng.choice(micro_grids[index]),
            "joined_on": local_today() - timedelta(days=rng.randint(30, 6 * 365)),
            "show_on_leaderboard": n % 7 != 0,
        }, username=f"vol{n}", password_hash=password_hash, audit_it=False)
        people[index].append(volunteer)
    now = utcnow()
    for index, community in enumerate(made):
        types = {t.code: t for t in rules.activity_types(session, community.id)}
        for number, (title, code) in enumerate(ACTIVITIES):
            # One a month over the past half year: the dashboards have a history to show.
            starts = now - timedelta(days=30 * (len(ACTIVITIES) - number), hours=2)
            activity = activities.create_activity(session, community.id, {
                "type_id": types[code].id, "title": title, "place": "社区党群服务中心",
                "starts_at": starts, "ends_at": starts + timedelta(hours=2)}, by=None)
            # Everyone came to the first two; later ones drew smaller crowds.
            present = people[index] if number < 2 else rng.sample(
                people[index], k=rng.randint(4, min(12, len(people[index]))))
            activities.mark_present(session, activity, [v.id for v in present])
            awards.award_activity(session, activity, None, key=f"demo:{activity.id}", by=None,
                                  now=starts + timedelta(hours=3))
        for title, code, offset in (("社区消防安全培训", "training", 0),
                                    ("周末环境整治志愿服务", "service", 3)):
            starts = now + timedelta(days=offset) - timedelta(minutes=20 if not offset else 0)
            activities.create_activity(session, community.id, {
                "type_id": types[code].id, "title": title, "place": "社区广场",
                "starts_at": starts, "ends_at": starts + timedelta(hours=3),
                "capacity": 30}, by=None)
    for volunteer in people[0][::6]:
        redeemer = redemptions.Redeemer(volunteer.id, volunteer.account("POINTS"),
                                        volunteer.name[:1] + "*", volunteer.community_id)
        rice = session.scalar(sa.select(Item).where(Item.merchant_id == market.id,
                                                    Item.price <= 20))
        try:
            with session.begin_nested():
                found = redemptions.reserve(session, redeemer, rice.id, 1,
                                            key=f"demo:{volunteer.id}")
                redemptions.confirm(session, market.id, found.code, confirmed_by=None)
        except ledger.InsufficientFunds:
            continue
    session.flush()
    seed_tasks(session, rng)
    # A clean check on record: the dashboards show their figures without a warning.
    record_check(session, ledger.verify(session))
    return True
