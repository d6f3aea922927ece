"""Refusals of the earning half; each says what is wrong in the user's language."""

from flask_babel import gettext as _

from pointsmall.core.errors import AppError, Conflict, Forbidden, ValidationFailed


class CheckInRefused(AppError):
    status = 422
    code = "check_in_refused"


class MakerCannotApprove(Forbidden):
    code = "maker_cannot_approve"

    def __init__(self, adjustment: bool = False):
        super().__init__(_("The staff member who asked for an adjustment cannot approve it.")
                         if adjustment else
                         _("The staff member who made a batch cannot approve it."))


class BatchNotPending(Conflict):
    code = "batch_not_pending"

    def __init__(self, adjustment: bool = False):
        super().__init__(_("This adjustment has already been decided.") if adjustment
                         else _("This batch has already been decided."))


class AlreadyReversed(Conflict):
    code = "award_already_reversed"

    def __init__(self):
        super().__init__(_("This award has already been reversed."))


class PointsAlreadySpent(Conflict):
    code = "points_already_spent"

    def __init__(self, available: int, needed: int):
        super().__init__(_("The volunteer has spent some of these points: %(available)d of "
                           "%(needed)d are left. Reverse only what is left, or not at all.",
                           available=available, needed=needed))
        self.errors = {"points": [str(available)]}


class SignatureRefused(AppError):
    status = 401
    code = "bad_signature"


def invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed({field: [message]})
