"""Who is asking: the signed-in user of a page session, or the owner of an API token."""

from flask import Flask, g, request

from pointsmall.auth.models import User
from pointsmall.auth.service import user_for_token
from pointsmall.extensions import db, login_manager


def register(app: Flask) -> None:
    """Install Flask-Login's loaders (the app shell knows roles, not where users live)."""
    @login_manager.user_loader
    def load_user(session_id: str):
        if request.path.startswith("/api/"):
            return None  # the API trusts bearer tokens only: fall through to load_from_token
        user_id, _, version = session_id.partition(":")
        if not user_id.isdigit():
            return None
        user = db.session.get(User, int(user_id))
        if user is None or str(user.session_version) != version:
            return None
        return user

    @login_manager.request_loader
    def load_from_token(req):
        header = req.headers.get("Authorization", "")
        if not header.startswith("Bearer ") or not req.path.startswith("/api/"):
            return None
        user = user_for_token(db.session, header[7:].strip())
        if user is not None:
            g.token_auth = True
            if db.session.dirty:  # last_used_at moved on: keep it whatever the view does
                db.session.commit()
        return user
