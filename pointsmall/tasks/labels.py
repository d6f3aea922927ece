"""What the task board's states are called on pages, in the reader's language."""

from flask_babel import lazy_gettext as _l

STATE_LABELS = {
    "claimed": _l("Claimed"), "started": _l("Started"), "done": _l("Done, waiting for a check"),
    "accepted": _l("Accepted"), "given_back": _l("Given back"), "lapsed": _l("Not started in time"),
}
TASK_STATUS_LABELS = {"open": _l("Open"), "closed": _l("Finished"),
                      "cancelled": _l("Cancelled")}
WISH_STATUS_LABELS = {"new": _l("Waiting for screening"), "published": _l("Published as a task"),
                      "merged": _l("Merged with another"),
                      "closed": _l("Closed by staff")}
WISH_KIND_LABELS = {"wish": _l("Micro-wish"), "report": _l("Problem report")}
MODE_LABELS = {"open": _l("Open for claiming"), "dispatch": _l("Dispatched to named volunteers")}
STAR_LABELS = {0: _l("Not yet starred"), 1: _l("One-star volunteer"),
               2: _l("Two-star volunteer"), 3: _l("Three-star volunteer"),
               4: _l("Four-star volunteer"), 5: _l("Five-star volunteer")}
