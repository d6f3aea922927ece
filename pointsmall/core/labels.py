"""What the app calls the codes it stores, in words Babel translates: one map per thing
labelled, shared by pages, files and messages. (A feature's own codes keep their labels in
the feature: tasks/labels.py, jobs/views.py.)"""

from flask_babel import lazy_gettext as _l

# The statuses of a redemption, and of an item a merchant proposed.
MARKET_STATUS_LABELS = {
    "reserved": _l("Reserved"), "fulfilled": _l("Fulfilled"), "cancelled": _l("Cancelled"),
    "expired": _l("Expired"), "refunded": _l("Refunded"), "proposed": _l("Proposed"),
    "approved": _l("Approved"), "rejected": _l("Rejected"),
}
VOLUNTEER_STATUS_LABELS = {"active": _l("Active"), "suspended": _l("Suspended"),
                           "left": _l("Left")}
CATEGORY_LABELS = {
    "food": _l("Food and drink"), "grocery": _l("Groceries"), "education": _l("Education"),
    "service": _l("Services"), "daily": _l("Daily goods"), "other": _l("Other"),
}
# The kinds of ledger transaction.
KIND_LABELS = {
    "award": _l("Award"), "redemption": _l("Redemption"), "refund": _l("Refund"),
    "reversal": _l("Reversal"), "adjustment": _l("Adjustment"), "expiry": _l("Expired"),
    "settlement": _l("Settlement"),
}
# The statuses of an award batch (and of an adjustment).
BATCH_LABELS = {"pending": _l("Waiting for approval"), "posted": _l("Posted"),
                "rejected": _l("Rejected")}
TIER_LABELS = {"bronze": _l("Bronze"), "silver": _l("Silver"), "gold": _l("Gold")}
