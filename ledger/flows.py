"""Daily flows: what each kind of transaction moved in and out of a scope of accounts, per day.

Reports ask "how many points did this community issue, see redeemed and see expire in
March?" over millions of postings. Summing postings for every page view does not scale, so
each write also adds its amounts to a small table, in the same database transaction as
the postings themselves: a row per (scope, asset, kind, local day, slot). A scope is a label
the application gives accounts when it opens them (`community:3` for a community's
volunteers, `merchant:7` for a merchant's till); accounts without one are not summed.

The day is the local day in the flow zone (DEFAULT_ZONE unless `set_zone` says otherwise),
so months and days in reports have exact boundaries. A row is spread over a few slots
so that concurrent writers to one scope do not queue on one row; readers add the slots up.

Flows are derived data, not ledger rows: `rebuild` recomputes them from the postings
(after a change of zone, say), and `verify` checks them against the postings.
"""

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
import sqlalchemy.orm as so
from sqlalchemy.dialects import postgresql

from ledger.models import Account, Flow, Posting, Transaction

SLOTS = 4
# The deployment's time zone unless configured (the app's POINTSMALL_TIMEZONE).
DEFAULT_ZONE = "Asia/Shanghai"
_zone = ZoneInfo(DEFAULT_ZONE)
_FLOWS = Flow.__table__


def set_zone(name: str) -> None:
    """Count days in the time zone `name` from now on (the deployment's zone)."""
    global _zone
    _zone = ZoneInfo(name)


def zone() -> ZoneInfo:
    return _zone


def day_of(moment: datetime) -> date:
    """Return the local day of a naive-UTC moment."""
    return moment.replace(tzinfo=UTC).astimezone(_zone).date()


def add(session: so.Session, items: Iterable[tuple[str | None, str, str, datetime, int]]) -> None:
    """Add postings, given as (scope, asset, kind, when, amount), to their days' flows.

    Postings on accounts without a scope are skipped.
    """
    found = rows(items)
    if found:
        session.connection().execute(_UPSERT, found)


def rows(items: Iterable[tuple[str | None, str, str, datetime, int]]) -> list[dict]:
    """The flow rows to add for postings given as (scope, asset, kind, when, amount).

    Sorted by key, so that two writers that share rows take their locks in one order; all
    in one randomly chosen slot.
    """
    totals: dict[tuple[str, str, str, date], list[int]] = {}
    for scope, asset, kind, when, amount in items:
        if scope is None:
            continue
        key = (scope, asset, kind, day_of(when))
        total = totals.setdefault(key, [0, 0, 0])
        if amount > 0:
            total[0] += amount
        else:
            total[1] -= amount
        total[2] += 1
    if not totals:
        return []
    slot = random.randrange(SLOTS)
    return [{"scope": s, "asset_code": a, "kind": k, "day": d, "slot": slot, "credits": c,
             "debits": db, "postings": n}
            for (s, a, k, d), (c, db, n) in sorted(totals.items())]


def _upsert() -> sa.Insert:
    """INSERT ... ON CONFLICT DO UPDATE adding to the sums."""
    insert = postgresql.insert(_FLOWS)
    return insert.on_conflict_do_update(
        index_elements=["scope", "asset_code", "kind", "day", "slot"],
        set_={column: _FLOWS.c[column] + insert.excluded[column]
              for column in ("credits", "debits", "postings")})


_UPSERT = _upsert()


@dataclass(frozen=True)
class DayFlow:
    """What one kind of transaction moved on a scope's accounts of one asset on one day."""

    scope: str
    asset: str
    kind: str
    day: date
    credits: int
    debits: int
    postings: int

    @property
    def net(self) -> int:
        return self.credits - self.debits


def daily(session: so.Session, scopes: Sequence[str], *, start: date | None = None,
          end: date | None = None, asset: str | None = None) -> list[DayFlow]:
    """Return the flows of `scopes` per day, kind and asset, from `start` up to `end` (excluded)."""
    f = _FLOWS.c
    query = (sa.select(f.scope, f.asset_code, f.kind, f.day, sa.func.sum(f.credits),
                       sa.func.sum(f.debits), sa.func.sum(f.postings))
             .where(f.scope.in_(list(scopes)))
             .group_by(f.scope, f.asset_code, f.kind, f.day)
             .order_by(f.scope, f.day, f.kind))
    if start is not None:
        query = query.where(f.day >= start)
    if end is not None:
        query = query.where(f.day < end)
    if asset is not None:
        query = query.where(f.asset_code == asset)
    return [DayFlow(s, a, k, d if isinstance(d, date) else date.fromisoformat(d),
                    int(c), int(db), int(n))
            for s, a, k, d, c, db, n in session.execute(query)]


def periods(session: so.Session, scopes: Sequence[str], bounds: Sequence[date], *,
            asset: str | None = None) -> dict[tuple[str, str, str, int], tuple[int, int]]:
    """Sum flows into the periods [bounds[i], bounds[i+1]); before the first is period -1.

    Return {(scope, asset, kind, period): (credits, debits)}: the database does the
    summing, so a year of a district's days comes back as a few hundred rows.
    """
    f = _FLOWS.c
    if len(bounds) < 2:
        raise ValueError("periods need at least a start and an end")
    period = period_index(f.day, bounds)
    query = (sa.select(f.scope, f.asset_code, f.kind, period.label("period"),
                       sa.func.sum(f.credits), sa.func.sum(f.debits))
             .where(f.scope.in_(list(scopes)), f.day < bounds[-1])
             .group_by(f.scope, f.asset_code, f.kind, period))
    if asset is not None:
        query = query.where(f.asset_code == asset)
    return {(s, a, k, p): (int(c), int(db)) for s, a, k, p, c, db in session.execute(query)}


def period_index(column: sa.ColumnElement, bounds: Sequence) -> sa.ColumnElement:
    """A SQL expression: i for a value in [bounds[i], bounds[i+1]), -1 before the first."""
    return sa.case(*((column < bound, i - 1) for i, bound in enumerate(bounds)), else_=None)


def rebuild(session: so.Session, *, batch: int = 50_000) -> int:
    """Recompute every flow from the postings (in the current zone); return postings counted."""
    session.flush()
    # Writers wait until the rebuilt rows commit; their postings land in them or after.
    session.execute(sa.text("LOCK TABLE ledger_flows IN EXCLUSIVE MODE"))
    session.execute(sa.delete(Flow))
    query = (sa.select(Account.scope, Posting.asset_code, Transaction.kind,
                       Transaction.created_at, Posting.amount)
             .join(Account, Account.id == Posting.account_id)
             .join(Transaction, Transaction.id == Posting.transaction_id)
             .where(Account.scope.is_not(None))
             .execution_options(yield_per=batch))
    counted = 0
    chunk: list[tuple] = []
    for row in session.execute(query):
        chunk.append(tuple(row))
        if len(chunk) >= batch:
            add(session, chunk)
            counted += len(chunk)
            chunk = []
    add(session, chunk)
    return counted + len(chunk)


def mismatches(session: so.Session) -> list[tuple[str, str, str, int, int, int, int]]:
    """Compare flows with postings per (scope, asset, kind); return what differs.

    Each difference is (scope, asset, kind, credits in flows, in postings, debits in
    flows, in postings).
    """
    p = Posting.__table__.c
    credit = sa.case((p.amount > 0, p.amount), else_=0)
    debit = sa.case((p.amount < 0, -p.amount), else_=0)
    from_postings = {
        (s, a, k): (int(c), int(d))
        for s, a, k, c, d in session.execute(
            sa.select(Account.scope, p.asset_code, Transaction.kind, sa.func.sum(credit),
                      sa.func.sum(debit))
            .select_from(Posting.__table__)
            .join(Account, Account.id == p.account_id)
            .join(Transaction, Transaction.id == p.transaction_id)
            .where(Account.scope.is_not(None))
            .group_by(Account.scope, p.asset_code, Transaction.kind))
    }
    f = _FLOWS.c
    from_flows = {
        (s, a, k): (int(c), int(d))
        for s, a, k, c, d in session.execute(
            sa.select(f.scope, f.asset_code, f.kind, sa.func.sum(f.credits),
                      sa.func.sum(f.debits))
            .group_by(f.scope, f.asset_code, f.kind))
    }
    found = []
    for key in sorted(set(from_postings) | set(from_flows)):
        fc, fd = from_flows.get(key, (0, 0))
        pc, pd = from_postings.get(key, (0, 0))
        if (fc, fd) != (pc, pd):
            found.append((*key, fc, pc, fd, pd))
    return found
