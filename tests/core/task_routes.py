"""The task board's routes in the authorisation matrix (test_scoping.py and
test_authorisation_matrix.py): the rows of community A they name, and a case per route."""

from datetime import timedelta

from ledger import utcnow
from pointsmall.extensions import db
from pointsmall.tasks import board, wishes

TASK_TITLE, CLAIMED_TITLE, DONE_TITLE = "疏通下水道", "整理图书角", "清理小广告"
WISH_TEXT, OTHER_WISH_TEXT = "楼下路灯不亮", "单元门禁坏了"


def build_task_world(place, staff, volunteer) -> tuple[dict[str, int], tuple[str, ...]]:
    """Add to community A an open task, one the volunteer claimed, one done, two wishes."""
    def task(title):
        return board.publish_task(db.session, place.id, {
            "title": title, "grid_id": place.micro.id, "points": 5, "merit": 5, "people": 2,
            "deadline": utcnow() + timedelta(days=3)}, actor=staff)

    open_task, claimed, done = task(TASK_TITLE), task(CLAIMED_TITLE), task(DONE_TITLE)
    board.claim_task(db.session, volunteer, claimed.id)
    board.claim_task(db.session, volunteer, done.id)
    done_row = board.finish_task(db.session, volunteer, done.id, note="撕掉了")
    wish, other = (wishes.post_wish(db.session, place.micro.id, {
        "name": "居民", "phone": phone, "text": text}, address="198.51.100.7")
        for phone, text in (("13600000001", WISH_TEXT), ("13600000002", OTHER_WISH_TEXT)))
    return ({"task_id": open_task.id, "claimed_task": claimed.id,
             "assignment_id": done_row.id, "wish_id": wish.id, "other_wish": other.id,
             "grid_id": place.micro.id},
            (TASK_TITLE, CLAIMED_TITLE, DONE_TITLE, WISH_TEXT, OTHER_WISH_TEXT))


def task_form(w) -> dict:
    return {"title": "新任务", "grid_id": str(w.micro_a), "points": "5", "merit": "5",
            "people": "1", "hours": "1", "mode": "open", "start_within_hours": "24",
            "deadline": "2030-01-01T09:00"}


def routes() -> dict:
    """Staff pages and the API: who may call each, and what the owner gets."""
    # test_scoping imports this module while it is being built: import it when called.
    from tests.core.test_scoping import STAFF, VOLUNTEER, Case

    claimed = {"task_id": "claimed_task"}
    return {
        ("GET", "/staff/tasks"): Case(STAFF, 200, other=200, shows_a=True),
        # Another community's grid in the form is refused beside the field.
        ("POST", "/staff/tasks"): Case(STAFF, 302, other=422, body=task_form),
        ("GET", "/staff/tasks/<int:task_id>"): Case(STAFF, 200, shows_a=True),
        ("POST", "/staff/tasks/<int:task_id>/dispatch"): Case(
            STAFF, 302, body=lambda w: {"d-phones": w.volunteer_phone}),
        ("POST", "/staff/task-assignments/<int:assignment_id>/accept"): Case(
            STAFF, 302, body=lambda w: {"check-rating": "5"}),
        ("POST", "/staff/task-assignments/<int:assignment_id>/send-back"): Case(
            STAFF, 302, body=lambda w: {"back-reason": "照片不清楚"}),
        ("GET", "/staff/wishes"): Case(STAFF, 200, other=200, shows_a=True),
        ("GET", "/staff/wishes/<int:wish_id>"): Case(STAFF, 200, shows_a=True),
        ("POST", "/staff/wishes/<int:wish_id>/publish"): Case(STAFF, 302, body=lambda w: {
            "p-title": "修路灯", "p-points": "5", "p-merit": "5", "p-people": "1",
            "p-hours": "1", "p-deadline": "2030-01-01T09:00"}),
        ("POST", "/staff/wishes/<int:wish_id>/merge"): Case(STAFF, 302, body=lambda w: {
            "m-into_id": str(w.ids["other_wish"])}),
        ("POST", "/staff/wishes/<int:wish_id>/close"): Case(STAFF, 302, body=lambda w: {
            "c-reason": "已转物业"}),
        ("GET", "/staff/wishes/poster/<int:grid_id>"): Case(STAFF, 200, shows_a=True),
        ("GET", "/api/v1/tasks"): Case(VOLUNTEER, 200, owner="volunteer", other=200,
                                       shows_a=True),
        ("POST", "/api/v1/tasks/<int:task_id>/claim"): Case(VOLUNTEER, 200, owner="volunteer"),
        ("POST", "/api/v1/tasks/<int:task_id>/start"): Case(VOLUNTEER, 200, owner="volunteer",
                                                            args=claimed),
        ("POST", "/api/v1/tasks/<int:task_id>/done"): Case(
            VOLUNTEER, 200, owner="volunteer", args=claimed, body=lambda w: {"note": "好了"}),
        ("POST", "/api/v1/tasks/<int:task_id>/give-back"): Case(
            VOLUNTEER, 200, owner="volunteer", args=claimed, body=lambda w: {"reason": "有事"}),
        ("GET", "/api/v1/me/hours"): Case(VOLUNTEER, 200, owner="volunteer", other=200),
        ("GET", "/api/v1/staff/tasks"): Case(STAFF, 200, other=200, shows_a=True),
        ("POST", "/api/v1/staff/tasks"): Case(STAFF, 201, other=422, body=lambda w: {
            "title": "新任务", "grid_id": w.micro_a, "points": 5,
            "deadline": "2030-01-01T01:00:00Z"}),
        ("GET", "/api/v1/staff/tasks/<int:task_id>/assignments"): Case(STAFF, 200),
        ("POST", "/api/v1/staff/task-assignments/<int:assignment_id>/accept"): Case(
            STAFF, 200, body=lambda w: {"rating": 5}),
        ("POST", "/api/v1/staff/task-assignments/<int:assignment_id>/send-back"): Case(
            STAFF, 200, body=lambda w: {"reason": "照片不清楚"}),
        ("GET", "/api/v1/staff/wishes"): Case(STAFF, 200, other=200, shows_a=True),
        ("POST", "/api/v1/staff/tasks/<int:task_id>/dispatch"): Case(STAFF, 200, body=lambda w: {
            "volunteer_ids": [w.ids["volunteer_id"]]}),
        ("POST", "/api/v1/staff/wishes/<int:wish_id>/publish"): Case(STAFF, 200, body=lambda w: {
            "title": "修路灯", "points": 5, "deadline": "2030-01-01T01:00:00Z"}),
        ("POST", "/api/v1/staff/wishes/<int:wish_id>/merge"): Case(STAFF, 200, body=lambda w: {
            "into_id": w.ids["other_wish"]}),
        ("POST", "/api/v1/staff/wishes/<int:wish_id>/close"): Case(STAFF, 200, body=lambda w: {
            "reason": "已转物业"}),
    }


EXPORT_TABLES = ("tasks", "wishes", "hours")

NOT_SCOPED = {
    ("POST", "/api/v1/platform/tasks"): "the grid platform signs it (HMAC), tested in "
                                         "test_tasks_pages.py",
}


def pages() -> dict:
    """The volunteer's task pages."""
    # test_scoping imports this module while it is being built: import it when called.
    from tests.core.test_scoping import VOLUNTEER, Case

    claimed = {"task_id": "claimed_task"}
    return {
        ("GET", "/tasks"): Case(VOLUNTEER, 200, owner="volunteer", other=200, shows_a=True),
        ("GET", "/tasks/<int:task_id>"): Case(VOLUNTEER, 200, owner="volunteer", shows_a=True),
        ("POST", "/tasks/<int:task_id>/claim"): Case(VOLUNTEER, 302, owner="volunteer"),
        ("POST", "/tasks/<int:task_id>/start"): Case(VOLUNTEER, 302, owner="volunteer",
                                                     args=claimed),
        ("POST", "/tasks/<int:task_id>/done"): Case(VOLUNTEER, 302, owner="volunteer",
                                                    args=claimed,
                                                    body=lambda w: {"done-note": "好了"}),
        ("POST", "/tasks/<int:task_id>/give-back"): Case(
            VOLUNTEER, 302, owner="volunteer", args=claimed,
            body=lambda w: {"back-reason": "有事"}),
    }


# The residents' pages need no account; test_tasks_pages.py drives them with real grids and
# codes. Here: what an anonymous visitor gets for a grid or code that is not there, and a
# form sent without its CSRF token.
PUBLIC = {
    ("GET", "/wish/<int:grid_id>"): 404,
    ("POST", "/wish/<int:grid_id>"): 400,
    ("GET", "/wish/follow"): 200,
    ("POST", "/wish/follow"): 400,
    ("GET", "/wish/follow/<code>"): 404,
    ("POST", "/wish/follow/<code>/rate"): 400,
}
PUBLIC_URLS = {"/wish/<int:grid_id>": "/wish/0", "/wish/follow/<code>": "/wish/follow/NOPE",
               "/wish/follow/<code>/rate": "/wish/follow/NOPE/rate"}
