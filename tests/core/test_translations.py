"""Every page string has a Chinese translation, the compiled catalog is current, pages speak it.

When a test here fails after adding strings, run the three pybabel commands of README.md
("Translations"), translate what they add, and commit the .po with its .mo.
"""

import re
from io import BytesIO
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po

from pointsmall.auth.service import too_many_sign_ins

ROOT = Path(__file__).resolve().parents[2]
PO = ROOT / "pointsmall" / "translations" / "zh_CN" / "LC_MESSAGES" / "messages.po"
MO = PO.with_suffix(".mo")


def source_messages() -> dict[tuple[str, str | None], str]:
    """Extract the msgids from the source now, as `pybabel extract -F babel.cfg` does."""
    with open(ROOT / "babel.cfg", encoding="utf-8") as cfg:
        method_map, options_map = parse_mapping_cfg(cfg, "babel.cfg")
    found = {}
    for filename, lineno, message, _comments, context in extract_from_dir(
            str(ROOT), method_map, options_map):
        msgid = message if isinstance(message, str) else message[0]
        if msgid:
            found.setdefault((msgid, context), f"{filename}:{lineno}")
    return found


def zh_catalog() -> Catalog:
    with open(PO, "rb") as f:
        return read_po(f, locale="zh_CN")


def translations(catalog: Catalog) -> dict[tuple[str, str | None], tuple[str, ...]]:
    """Map (msgid, context) to the translated forms, leaving out the header."""
    return {
        (m.id if isinstance(m.id, str) else m.id[0], m.context):
            (m.string,) if isinstance(m.string, str) else tuple(m.string)
        for m in catalog if m.id
    }


def test_every_source_string_is_translated_into_chinese():
    catalog = zh_catalog()
    problems = []
    for (msgid, context), where in sorted(source_messages().items()):
        message = catalog.get(msgid, context)
        strings = () if message is None else (
            (message.string,) if isinstance(message.string, str) else message.string)
        if message is None:
            problems.append(f"missing from the .po: {msgid!r} ({where})")
        elif not all(strings):
            problems.append(f"untranslated: {msgid!r} ({where})")
        elif message.fuzzy:
            problems.append(f"fuzzy, needs a check: {msgid!r} ({where})")
    assert not problems, "zh_CN catalog is behind the source:\n" + "\n".join(problems)


def test_chinese_translations_keep_the_placeholders_of_the_english():
    problems = [f"{message.id!r}: {'; '.join(map(str, errors))}"
                for message, errors in zh_catalog().check()]
    assert not problems, "\n".join(problems)


def test_committed_mo_is_what_the_po_compiles_to():
    compiled = BytesIO()
    write_mo(compiled, zh_catalog())
    compiled.seek(0)
    with open(MO, "rb") as f:
        committed = read_mo(f)
    fresh = read_mo(compiled)
    stale = sorted(
        repr(key[0]) for key in translations(fresh).keys() | translations(committed).keys()
        if translations(fresh).get(key) != translations(committed).get(key))
    assert not stale, ("messages.mo differs from messages.po; run "
                       "`pybabel compile -d pointsmall/translations`: " + ", ".join(stale))
    assert committed.plural_forms == fresh.plural_forms


def test_sign_in_page_is_in_chinese_by_default_and_in_english_after_choosing_it(client):
    page = client.get("/login").get_data(as_text=True)
    assert '<html lang="zh-CN">' in page
    assert "<h1>登录</h1>" in page
    assert "用户名或手机号" in page
    assert "积分商城" in page

    chosen = client.get("/lang/en?next=/login")
    assert chosen.status_code == 302
    page = client.get("/login").get_data(as_text=True)
    assert '<html lang="en">' in page
    assert "<h1>Sign in</h1>" in page
    assert "Username or phone number" in page
    assert "登录" not in page


def test_form_errors_from_wtforms_are_chinese_too(client):
    form = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', form).group(1)
    page = client.post("/login", data={"csrf_token": token, "login": "", "password": ""})
    assert "该字段是必填字段" in page.get_data(as_text=True)


def test_counted_minutes_agree_with_the_number_in_both_languages(base_app):
    app = base_app  # no app context kept open: each request context picks its language
    with app.test_request_context(headers={"Cookie": "lang=en"}):
        assert too_many_sign_ins(1).endswith("in 1 minute.")
        assert too_many_sign_ins(5).endswith("in 5 minutes.")
    with app.test_request_context():
        assert too_many_sign_ins(1) == "登录失败次数过多，请 1 分钟后再试。"
        assert too_many_sign_ins(5) == "登录失败次数过多，请 5 分钟后再试。"
