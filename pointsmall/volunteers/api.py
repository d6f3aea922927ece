"""The volunteers API for community staff."""

from flask_smorest import Blueprint

bp = Blueprint("api_volunteers", __name__, url_prefix="/api/v1/volunteers",
               description="Volunteers of the caller's community (staff).")
