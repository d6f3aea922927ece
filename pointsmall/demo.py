"""Demo data: two communities' issuance accounts, fifty volunteers with some history."""

import random

import sqlalchemy as sa
import sqlalchemy.orm as so

import ledger

COMMUNITIES = (1, 2)
VOLUNTEERS = 50


def seed(session: so.Session) -> bool:
    """Seed the demo ledger unless it is already there; return whether anything was created."""
    if session.scalar(sa.select(ledger.Account.id).limit(1)) is not None:
        return False
    rng = random.Random(2026)
    for community in COMMUNITIES:
        for asset in ("POINTS", "MERIT"):
            ledger.open_account(session, f"community:{community}:issuance:{asset.lower()}",
                                asset, allow_negative=True, stripes=8)
    ledger.open_account(session, "merchant:1:points", "POINTS")
    for n in range(1, VOLUNTEERS + 1):
        community = COMMUNITIES[n % 2]
        points = f"volunteer:{n}:points"
        ledger.open_account(session, points, "POINTS")
        ledger.open_account(session, f"volunteer:{n}:merit", "MERIT")
        for award in range(rng.randint(1, 4)):
            amount = rng.choice((10, 20, 30, 50))
            ledger.transfer(session, [
                ledger.Leg(f"community:{community}:issuance:points", -amount),
                ledger.Leg(points, amount),
                ledger.Leg(f"community:{community}:issuance:merit", -amount),
                ledger.Leg(f"volunteer:{n}:merit", amount),
            ], key=f"demo:award:{n}:{award}", kind="award", memo="社区志愿服务")
        if n % 5 == 0:
            held = ledger.hold(session, points, "merchant:1:points", 10,
                               key=f"demo:redeem:{n}", kind="redemption", memo="爱心超市 大米")
            ledger.post_hold(session, held.id, key=f"demo:confirm:{n}")
    return True
