"""Flask extensions, created unbound and bound in create_app."""

from flask_babel import Babel
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_smorest import Api
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from marshmallow import Schema, fields

import ledger

# One MetaData for every layer: the ledger's tables and the app's are migrated together.
db = SQLAlchemy(metadata=ledger.Base.metadata)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
babel = Babel()


class ErrorSchema(Schema):
    """Every API failure: a code, a message in the caller's language, errors by field."""

    code = fields.String(required=True)
    message = fields.String(required=True)
    errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))


class PointsApi(Api):
    ERROR_SCHEMA = ErrorSchema


api = PointsApi()
