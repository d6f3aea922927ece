"""The demo's task board: open, claimed, done and accepted tasks, and wishes in each state."""

import random
from datetime import timedelta

import sqlalchemy as sa
import sqlalchemy.orm as so

from ledger import utcnow
from pointsmall.auth.models import User
from pointsmall.people.communities import Community, community_grids
from pointsmall.people.models import Volunteer
from pointsmall.tasks import board, checks, wishes

OPEN = ["楼道杂物清理", "独居老人探访", "消防通道巡查", "垃圾分类督导", "小区绿化带除草"]
GRID_WIDE = ["网格安全隐患排查", "防汛物资清点"]
DONE = [("帮王奶奶取药", 10), ("社区宣传栏更新", 15), ("共享单车整理", 10),
        ("楼栋长会议记录", 10), ("疫苗接种引导", 20), ("电动车违规充电劝导", 15)]
WISHES = [("张阿姨", "希望有人帮忙把旧衣物送到回收点", "wish"),
          ("外卖小哥刘", "5 栋单元门禁经常坏，送餐进不去", "report"),
          ("李爷爷", "想学用智能手机挂号", "wish"),
          ("居民小陈", "3 栋楼下路灯不亮", "report"),
          ("赵女士", "孩子放学后想找个地方写作业", "wish")]


def seed_tasks(session: so.Session, rng: random.Random) -> None:
    """Seed each demo community's task board and wishes."""
    now = utcnow()
    for community in session.scalars(sa.select(Community).order_by(Community.id)):
        staff = session.scalar(sa.select(User).where(User.community_id == community.id,
                                                     User.role == "staff"))
        people = list(session.scalars(sa.select(Volunteer).where(
            Volunteer.community_id == community.id).order_by(Volunteer.id)))
        grids = community_grids(session, community.id)
        micros = [g for g in grids if g.level == "micro"]

        def publish(title, grid, points=10, created=now, people_=2, community=community,
                    staff=staff, **extra):
            return board.publish_task(session, community.id, {
                "title": title, "description": f"{title}，完成后请拍照说明。",
                "place": f"{grid.name}楼下",
                "grid_id": grid.id, "points": points, "merit": points, "people": people_,
                "hours": extra.pop("hours", 2), "deadline": created + timedelta(days=3),
                **extra}, actor=staff, now=created)

        for n, grid in enumerate(micros):
            publish(OPEN[n % len(OPEN)], grid, points=10 + 5 * (n % 3),
                    photo_required=n % 2 == 0)
        for n, grid in enumerate(g for g in grids if g.level == "grid"):
            publish(GRID_WIDE[n % len(GRID_WIDE)], grid, points=20, people_=5)
        # History: done and accepted tasks over the past weeks, one waiting for a check,
        # one still in a volunteer's hands.
        for n, (title, points) in enumerate(DONE):
            volunteer = people[(n * 5 + 1) % len(people)]
            created = now - timedelta(days=3 + 4 * n, hours=rng.randint(0, 20))
            task = publish(title, volunteer.grid, points=points, created=created, people_=1,
                           hours=rng.choice([1, 1.5, 2, 3]))
            claimed = created + timedelta(hours=rng.randint(1, 12))
            board.claim_task(session, volunteer, task.id, now=claimed)
            row = board.finish_task(session, volunteer, task.id, note="已完成，情况良好。",
                                    now=claimed + timedelta(hours=rng.randint(2, 40)))
            if n == 0:
                continue  # waiting for staff to check it
            checks.accept_task(session, staff, row.id, rating=rng.choice([4, 5, 5, 3]),
                               comment="按时完成", now=row.done_at + timedelta(hours=5))
        busy = people[2]
        task = publish("社区图书角整理", busy.grid, points=10, people_=1)
        board.claim_task(session, busy, task.id)
        for n, (name, text, kind) in enumerate(WISHES):
            wish = wishes.post_wish(session, micros[n % len(micros)].id, {
                "name": name, "phone": f"1390000{community.id:02d}{n:02d}", "text": text,
                "kind": kind}, address=f"demo-{community.id}-{n}")
            if n == 1:
                wishes.publish_wish(session, staff, wish.id, {
                    "title": "修理 5 栋单元门禁", "points": 15, "merit": 15, "people": 1,
                    "hours": 1, "deadline": now + timedelta(days=2)})
            elif n == 2:
                published = wishes.publish_wish(session, staff, wish.id, {
                    "title": "教老人用手机挂号", "points": 20, "merit": 20, "people": 1,
                    "hours": 2, "deadline": now + timedelta(days=2)})
                helper = next(v for v in people if v.grid_id == published.task.grid_id or
                              v.grid.parent_id == published.task.grid_id)
                board.claim_task(session, helper, published.task_id)
                row = board.finish_task(session, helper, published.task_id, note="已教会")
                checks.accept_task(session, staff, row.id, rating=5)
            elif n == 3:
                wishes.close_wish(session, staff, wish.id, reason="已转交物业公司维修")
            elif n == 4:
                first = wishes.community_wishes(session, community.id, status="new")
                others = [w for w in first if w.id != wish.id]
                if others:
                    wishes.merge_wish(session, staff, wish.id, others[-1].id)
    session.flush()
