"""The task board's forms; each names its fields as the use cases name theirs."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, MultipleFileField
from wtforms import (
    BooleanField,
    DateTimeLocalField,
    DecimalField,
    IntegerField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import Optional

from pointsmall.core.errors import ValidationFailed


class TaskForm(FlaskForm):
    title = StringField(_l("Title"))
    description = TextAreaField(_l("What is to be done"))
    place = StringField(_l("Place"))
    grid_id = SelectField(_l("Grid or micro-grid"), coerce=int, validate_choice=False)
    points = IntegerField(_l("Points on acceptance"), validators=[Optional()])
    merit = IntegerField(_l("Merit on acceptance"), validators=[Optional()])
    people = IntegerField(_l("Number of people"), validators=[Optional()], default=1)
    hours = DecimalField(_l("Service hours per person"), validators=[Optional()], places=1)
    deadline = DateTimeLocalField(_l("Deadline"), format="%Y-%m-%dT%H:%M",
                                  validators=[Optional()])
    photo_required = BooleanField(_l("A photo of the result is required"))
    mode = SelectField(_l("Who may take it"), choices=[
        ("open", _l("Open for claiming by volunteers of the grid")),
        ("dispatch", _l("Dispatched by staff to named volunteers"))])
    start_within_hours = IntegerField(_l("Hours to start a claim before it returns to the pool"),
                                      validators=[Optional()], default=24)


# A rating from 5 (best) down to 1, as staff and residents give it.
RATINGS = [(n, str(n)) for n in range(5, 0, -1)]


class DoneForm(FlaskForm):
    note = TextAreaField(_l("What was done"))
    photos = MultipleFileField(_l("Photos (up to 3)"))


class ReasonForm(FlaskForm):
    reason = StringField(_l("Reason"))


class CheckForm(FlaskForm):
    rating = SelectField(_l("Rating"), coerce=int, validate_choice=False,
                         choices=RATINGS, default=5)
    comment = StringField(_l("Comment (optional)"))


class DispatchForm(FlaskForm):
    phones = StringField(_l("Volunteers' mobile numbers (separated by spaces)"))


class WishForm(FlaskForm):
    kind = SelectField(_l("What is it"), choices=[("wish", _l("A micro-wish")),
                                                  ("report", _l("A problem to report"))])
    name = StringField(_l("Your name or nickname"))
    phone = StringField(_l("Mobile number (only staff see it, to follow up)"))
    text = TextAreaField(_l("Your wish or the problem"))
    photo = FileField(_l("Photo (optional)"))


class FollowForm(FlaskForm):
    code = StringField(_l("Your code"))


class RateForm(FlaskForm):
    rating = SelectField(_l("How was the result?"), coerce=int, validate_choice=False,
                         choices=RATINGS, default=5)
    comment = StringField(_l("Comment (optional)"))


class PublishForm(FlaskForm):
    title = StringField(_l("Title"))
    place = StringField(_l("Place"))
    points = IntegerField(_l("Points on acceptance"), validators=[Optional()])
    merit = IntegerField(_l("Merit on acceptance"), validators=[Optional()])
    people = IntegerField(_l("Number of people"), validators=[Optional()], default=1)
    hours = DecimalField(_l("Service hours per person"), validators=[Optional()], places=1)
    deadline = DateTimeLocalField(_l("Deadline"), format="%Y-%m-%dT%H:%M",
                                  validators=[Optional()])
    photo_required = BooleanField(_l("A photo of the result is required"))


class MergeForm(FlaskForm):
    into_id = IntegerField(_l("Number of the wish to merge into"), validators=[Optional()])


def apply_errors(form: FlaskForm, error: ValidationFailed) -> list[str]:
    """Put a refusal's messages beside the form's fields; return those of no field."""
    left = []
    for name, messages in error.errors.items():
        field = getattr(form, name, None)
        if field is not None and hasattr(field, "errors"):
            field.errors = list(messages)
        else:
            left.extend(messages)
    return left
