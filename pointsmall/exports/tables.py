"""Each export: its name in URLs, its title, its columns' headers, where its rows come from."""

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import sqlalchemy.orm as so
from flask import request
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l

from pointsmall.core.export_query import Period, Scope
from pointsmall.core.labels import VOLUNTEER_STATUS_LABELS
from pointsmall.exports import journal, rows
from pointsmall.people import export, table
from pointsmall.tasks import export as task_export

Rows = Callable[[so.Session, Scope, Period], Iterator[list]]


@dataclass(frozen=True)
class Table:
    """One exportable table; `headers` are lazy, so they speak the caller's language."""

    name: str
    title: object
    headers: tuple | Callable[[], list[str]]
    rows: Rows
    # Whether the period applies (the volunteers list filters by its own fields instead).
    periodic: bool = True
    # How many rows `rows` yields, when that is cheap to ask (a background export's
    # progress bar then counts to it).
    count: Callable[[so.Session, Scope, Period], int] | None = None

    def header_texts(self) -> list[str]:
        """Return the headers in the user's language."""
        if callable(self.headers):
            return self.headers()
        return [str(h) for h in self.headers]


def _volunteer_rows(session: so.Session, scope: Scope, period: Period) -> Iterator[list]:
    # The list page's filters, tier and points included.
    query = table.export_query(session, scope.community_id, table.Filters.from_args(request.args))
    return export.volunteer_rows(session, scope.community_id, query, language(),
                                 {k: str(v) for k, v in VOLUNTEER_STATUS_LABELS.items()})


def language() -> str:
    """Return "zh" or "en": the headers' language, the user's page language."""
    return "zh" if str(get_locale() or "zh").startswith("zh") else "en"


def _volunteer_headers() -> list[str]:
    # The import columns' own headers, so that an exported file can be imported again.
    return export.export_headers(language())


VOLUNTEERS = Table("volunteers", _l("Volunteers"), _volunteer_headers, _volunteer_rows,
                   periodic=False)
ACTIVITIES = Table("activities", _l("Activities"), (
    _l("Activity no."), _l("Title"), _l("Activity type"), _l("Place"), _l("Starts"),
    _l("Ends"), _l("Capacity"), _l("Points"), _l("Merit"), _l("Cancelled"),
    _l("Signed up"), _l("Present")), rows.activities)
ATTENDANCE = Table("attendance", _l("Attendance"), (
    _l("Activity no."), _l("Activity"), _l("Starts"), _l("Name"), _l("Mobile number"),
    _l("Micro-grid"), _l("Signed up at"), _l("Checked in at"), _l("Present"),
    _l("How recorded")), rows.attendance)
AWARDS = Table("awards", _l("Awards"), (
    _l("Award no."), _l("Batch no."), _l("Batch status"), _l("Awarded at"), _l("Name"),
    _l("Mobile number"), _l("Title"), _l("Activity type"), _l("Points asked"), _l("Points"),
    _l("Merit"), _l("Cut by"), _l("Points reversed"), _l("Merit reversed"),
    _l("Reason for the reversal")), rows.awards)
REDEMPTIONS = Table("redemptions", _l("Redemptions"), (
    _l("Redemption no."), _l("Redeemed at"), _l("Merchant"), _l("Item"), _l("Quantity"),
    _l("Unit price"), _l("Points"), _l("Volunteer"), _l("Status"), _l("Handed over at"),
    _l("Closed at"), _l("Reason for the refund")), rows.redemptions)
STATEMENTS = Table("statements", _l("Statements"), (
    _l("Statement no."), _l("Merchant"), _l("First day"), _l("Last day"),
    _l("Points redeemed"), _l("Points refunded"), _l("Net points"),
    _l("Fen per point"), _l("Amount (yuan)"), _l("Closed at")), rows.statements)
JOURNAL = Table("journal", _l("Ledger journal"), (
    _l("Transaction no."), _l("Time"), _l("Kind"), _l("Memo"), _l("Ledger account"),
    _l("Asset"), _l("Amount"), _l("Balance after")), journal.journal, count=journal.count)

TASKS = Table("tasks", _l("Tasks"), (
    _l("Task no."), _l("Title"), _l("Grid or micro-grid"), _l("Published at"), _l("Deadline"),
    _l("Task status"), _l("Points"), _l("Merit"), _l("Service hours per person"),
    _l("Volunteer"), _l("Progress"), _l("Claimed at"), _l("Done at"), _l("Checked at"),
    _l("Rating"), _l("Closed at")), task_export.task_rows)
WISHES = Table("wishes", _l("Micro-wishes and reports"), (
    _l("Wish no."), _l("Posted at"), _l("What is it"), _l("Grid or micro-grid"), _l("Name"),
    _l("Mobile number"), _l("Text"), _l("Status"), _l("Task no."), _l("Merged into"),
    _l("Reason for closing"), _l("Resident's rating")), task_export.wish_rows)
HOURS = Table("hours", _l("Service hours"), (
    _l("Volunteer no."), _l("Name"), _l("Mobile number"), _l("Micro-grid"), _l("Task hours"),
    _l("Activity hours"), _l("Total hours")), task_export.hours_rows)

COMMUNITY_TABLES = {t.name: t for t in (VOLUNTEERS, ACTIVITIES, ATTENDANCE, AWARDS,
                                        REDEMPTIONS, STATEMENTS, JOURNAL, TASKS, WISHES,
                                        HOURS)}
MERCHANT_TABLES = {t.name: t for t in (REDEMPTIONS, STATEMENTS)}
ALL_TABLES = {**COMMUNITY_TABLES, **MERCHANT_TABLES}

