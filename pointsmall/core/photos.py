"""Item photos: checked to be images, shrunk, re-encoded as JPEG and served by the app."""

import re
import uuid
import warnings
from pathlib import Path

from flask import Blueprint, abort, current_app, send_from_directory
from PIL import Image, UnidentifiedImageError

from pointsmall.core.errors import ValidationFailed

bp = Blueprint("media", __name__, url_prefix="/media")

MAX_SIDE = 800
# Refuse images that would decompress into more than this many pixels (a "bomb").
MAX_PIXELS = 24_000_000
NAME = re.compile(r"^[0-9a-f]{32}\.jpg$")


def folder() -> Path:
    path = Path(current_app.config["UPLOAD_FOLDER"]) / "items"
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_item_photo(stream, message: str) -> str:
    """Store an uploaded image as a JPEG of at most 800 px a side; return its file name."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(stream) as probe:
                if probe.width * probe.height > MAX_PIXELS:
                    raise ValidationFailed({"photo": [message]})
                probe.verify()
            stream.seek(0)
            with Image.open(stream) as image:
                image.thumbnail((MAX_SIDE, MAX_SIDE))
                picture = image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError,
            Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ValidationFailed({"photo": [message]}) from None
    name = f"{uuid.uuid4().hex}.jpg"
    picture.save(folder() / name, "JPEG", quality=85, optimize=True)
    return name


@bp.get("/items/<name>")
def item_photo(name: str):
    """Serve an item photo."""
    if not NAME.match(name):
        abort(404)
    return send_from_directory(folder(), name, max_age=7 * 24 * 3600)
