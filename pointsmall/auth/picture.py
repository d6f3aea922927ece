"""A picture check (captcha) that a sign-in must pass while its account is being guessed.

The picture is drawn here with Pillow and sent inline (no request for it, nothing stored);
its answer travels with the form only as a keyed digest in a signed, timed token. Each
picture lets one sign-in attempt through: its nonce is counted once, like any attempt.
"""

import base64
import hashlib
import hmac
import io
import random
import secrets
from dataclasses import dataclass
from datetime import timedelta
from functools import cache

import sqlalchemy.orm as so
from flask import current_app
from itsdangerous import BadData, URLSafeTimedSerializer
from PIL import Image, ImageDraw, ImageFont

from pointsmall.core import attempts

ALPHABET = "ACDEFHJKMNPRTUVWXY34679"  # none that look alike (0/O, 1/I/L, 2/Z, 5/S, 8/B)
LENGTH = 5
LIFETIME = timedelta(minutes=10)
SIZE = (180, 64)


@dataclass(frozen=True)
class Challenge:
    token: str
    image: str  # a data: URI of a PNG, allowed by the CSP's img-src


def new_text() -> str:
    """Return the characters a new picture shows."""
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def new_challenge() -> Challenge:
    """Draw a new picture; return it with the token that the answer is checked against."""
    text, nonce = new_text(), secrets.token_urlsafe(12)
    token = _serializer().dumps({"n": nonce, "d": _digest(nonce, text)})
    return Challenge(token, "data:image/png;base64," + base64.b64encode(_draw(text)).decode())


def solved(session: so.Session, token: str | None, answer: str | None) -> bool:
    """Tell whether `answer` reads the picture of `token`; each picture passes once."""
    if not token or not answer:
        return False
    try:
        data = _serializer().loads(token, max_age=int(LIFETIME.total_seconds()))
        nonce, digest = str(data["n"]), str(data["d"])
    except (BadData, KeyError, TypeError):
        return False
    typed = "".join(answer.split()).upper()
    if not hmac.compare_digest(digest, _digest(nonce, typed)):
        return False
    try:
        attempts.reserve(session, "picture", nonce, 1, LIFETIME)
    except attempts.AttemptsExceeded:
        return False  # used already
    return True


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt="sign-in-picture")


def _digest(nonce: str, text: str) -> str:
    # Keyed: a plain hash of five characters would be read back by trying them all.
    key = hashlib.sha256(f"sign-in-picture:{current_app.secret_key}".encode()).digest()
    return hmac.new(key, f"{nonce}:{text}".encode(), hashlib.sha256).hexdigest()


@cache
def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _draw(text: str) -> bytes:
    rng = random.SystemRandom()
    image = Image.new("RGB", SIZE, (250, 250, 245))
    draw = ImageDraw.Draw(image)
    for _ in range(6):  # lines across the letters
        draw.line([(rng.randrange(SIZE[0]), rng.randrange(SIZE[1])) for _ in range(2)],
                  fill=tuple(rng.randrange(120, 210) for _ in range(3)), width=1)
    step = SIZE[0] // (len(text) + 1)
    for i, char in enumerate(text):
        glyph = Image.new("RGBA", (44, 52), (0, 0, 0, 0))
        ImageDraw.Draw(glyph).text((6, 2), char, font=_font(rng.randrange(34, 42)),
                                   fill=tuple(rng.randrange(0, 90) for _ in range(3)))
        glyph = glyph.rotate(rng.uniform(-28, 28), resample=Image.Resampling.BICUBIC)
        image.paste(glyph, (step // 2 + i * step + rng.randrange(-4, 5),
                            rng.randrange(0, SIZE[1] - 50)), glyph)
    for _ in range(120):  # speckles
        draw.point((rng.randrange(SIZE[0]), rng.randrange(SIZE[1])),
                   fill=tuple(rng.randrange(0, 255) for _ in range(3)))
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()
