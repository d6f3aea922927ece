"""Refusals of the task board; each says what is wrong in the user's language."""

from flask_babel import gettext as _

from pointsmall.core.errors import Conflict, Forbidden, ValidationFailed


class TaskFull(Conflict):
    code = "task_full"

    def __init__(self):
        super().__init__(_("Every place on this task is taken."))


class TaskNotOpen(Conflict):
    code = "task_not_open"


class OutsideGrid(Forbidden):
    code = "outside_grid"

    def __init__(self):
        super().__init__(_("This task is for volunteers of another grid."))


class WrongState(Conflict):
    code = "wrong_state"


class NotDone(Conflict):
    code = "task_not_done"

    def __init__(self):
        super().__init__(_("Only a task marked done can be checked."))


class AlreadyAccepted(Conflict):
    code = "already_accepted"

    def __init__(self):
        super().__init__(_("This task has already been accepted; the points were awarded "
                           "once."))


def invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed({field: [message]})
