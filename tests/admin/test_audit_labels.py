"""Every action the code writes to the audit log has a label office staff can read."""

import re
from pathlib import Path

from pointsmall.admin.audit_text import ACTIONS

ROOT = Path(__file__).resolve().parents[2]
RECORDED = re.compile(r'audit\.record\(\s*[\w.]+,\s*f?"([\w.{}]+)"')
CHOSEN = re.compile(r'action = "([\w.]+)"')


def recorded_actions() -> set[str]:
    """The action codes written anywhere in the app: literal, chosen, or item.{verdict}."""
    found = set()
    for path in list((ROOT / "pointsmall").rglob("*.py")) + list((ROOT / "merchants").rglob(
            "*.py")):
        text = path.read_text()
        for code in RECORDED.findall(text) + CHOSEN.findall(text):
            if "{verdict}" in code:
                found |= {code.replace("{verdict}", v) for v in ("approve", "reject")}
            elif "{" not in code and "." in code:
                found.add(code)
    return found


def test_every_audited_action_has_a_readable_label():
    actions = recorded_actions()
    assert {"task.accept", "wish.post", "points.adjust", "item.approve"} <= actions
    assert sorted(actions - set(ACTIONS)) == []


def test_the_task_boards_actions_read_in_chinese_on_the_audit_page(app):
    from flask_babel import force_locale

    with app.test_request_context(), force_locale("zh_CN"):
        assert str(ACTIONS["task.accept"]) == "核实通过任务"
        assert str(ACTIONS["wish.post"]) == "居民提交微心愿或问题"
