"""Guessing: passwords and redemption codes are throttled wherever they can be typed, and a
guessed code never confirms another merchant's redemption.

The limits themselves (five sign-ins an account from one address, twenty an address, a
picture past fifty an account, ten codes a user) are tested in test_web_auth.py,
test_api_auth.py, test_market_pages.py and test_market_api.py, and under parallel attempts in
test_attempt_races.py; these tests close the ways around them.
"""

import math

import pytest

import ledger
from merchants import redemptions
from merchants.models import Redemption
from pointsmall.auth.models import User
from pointsmall.extensions import db
from tests.builders import PASSWORD, ask_token, bearer, enter_session, sign_in


def test_sign_in_failures_on_the_page_and_in_the_api_share_one_limit(app, place, make_staff):
    staff = make_staff(place, username="guessed")
    page = app.test_client()
    for _ in range(3):
        assert sign_in(page, "guessed", "wrong-password").status_code == 401
    for _ in range(2):
        assert ask_token(app.test_client(), "guessed", "wrong-password").status_code == 401

    by_api = ask_token(app.test_client(), "guessed", PASSWORD)
    by_page = sign_in(app.test_client(), "guessed", PASSWORD)

    assert by_api.status_code == 429 and by_page.status_code == 429
    assert staff.id  # the account is there: only the guessing is refused


def test_guessing_the_current_password_on_the_account_page_is_limited(
        app, place, make_staff, no_csrf):
    staff = make_staff(place)
    client = app.test_client()
    enter_session(client, staff)

    wrong = [client.post("/account", data={"current": f"guess-{n}", "new": "a-new-password"})
             for n in range(5)]
    right = client.post("/account", data={"current": PASSWORD, "new": "a-new-password"})

    assert [w.status_code for w in wrong] == [200] * 5
    assert right.status_code == 429
    db.session.expire_all()
    assert db.session.get(User, staff.id).check_password(PASSWORD), "the password stays"
    assert sign_in(app.test_client(), staff.username, PASSWORD).status_code == 429


def test_a_code_cannot_be_guessed_within_the_lock(app):
    """Ten wrong codes lock a user for ten minutes; codes are ten of 31 characters."""
    space = len(redemptions.CODE_ALPHABET) ** redemptions.CODE_LENGTH
    guesses_a_year = 10 * 6 * 24 * 365  # ten every ten minutes, all year long
    live_codes = 100_000  # far more reserved redemptions than a district has at once

    assert math.log2(space) > 49
    assert guesses_a_year * live_codes / space < 1e-3
    assert len({redemptions.new_code() for _ in range(1000)}) == 1000


@pytest.mark.parametrize("how", ["page lookup", "page confirm", "api lookup", "api confirm",
                                 "api refund"])
def test_another_merchants_right_code_is_a_wrong_guess_and_confirms_nothing(
        app, place, shop, volunteer, noodles, redeem, make_shop, no_csrf, how):
    redemption = redeem(volunteer, noodles)
    rival = make_shop(place, name="隔壁面馆")
    page, api = app.test_client(), app.test_client()
    enter_session(page, rival.user)
    headers = bearer(rival.user)
    code = redemption.code

    def guess():
        if how == "page lookup":
            return page.post("/counter/lookup", data={"code": code})
        if how == "page confirm":
            return page.post("/counter/confirm", data={"code": code})
        if how == "api lookup":
            return api.get(f"/api/v1/merchant/redemptions/{code}", headers=headers)
        if how == "api confirm":
            return api.post(f"/api/v1/merchant/redemptions/{code}/confirm", headers=headers)
        return api.post(f"/api/v1/merchant/redemptions/{code}/refund", headers=headers,
                        json={"reason": "猜的"})

    answers = [guess() for _ in range(11)]

    assert [a.status_code for a in answers] == [404] * 10 + [429]
    assert all(noodles.name not in a.get_data(as_text=True) for a in answers)
    db.session.expire_all()
    assert db.session.get(Redemption, redemption.id).status == "reserved"
    assert ledger.balance(db.session, rival.merchant.account()).posted == 0
    # The rightful shop is not locked out by its rival's guessing.
    own = app.test_client()
    enter_session(own, shop.user)
    assert own.post("/counter/confirm", data={"code": code}).status_code == 302
    db.session.expire_all()
    assert db.session.get(Redemption, redemption.id).status == "fulfilled"

