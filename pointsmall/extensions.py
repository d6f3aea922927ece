"""Flask extensions, created unbound and bound in create_app."""

from datetime import UTC
from functools import cached_property

from babel import support
from flask_babel import Babel, Domain, get_locale
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_smorest import Api
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from marshmallow import Schema, fields

import ledger


class CatalogDomain(Domain):
    """Find a catalog filed under the plain locale name (zh_CN) too.

    Babel reads "zh_CN" as zh_Hans_CN, and gettext then looks only in zh_Hans_CN/ and
    zh/, never in the zh_CN/ that `pybabel init -l zh_CN` makes and the lang cookie names.
    """

    def get_translations(self):
        locale = get_locale()
        if locale is None:
            return support.NullTranslations()
        key = (str(locale), self.domain[0])
        if key not in self.cache:
            names = [str(locale)]
            if locale.script and locale.territory:
                names.append(f"{locale.language}_{locale.territory}")
            translations = support.Translations()
            for dirname in self.translation_directories:
                catalog = support.Translations.load(dirname, names, self.domain[0])
                translations.merge(catalog)
                if hasattr(catalog, "plural"):  # merge() keeps the messages only
                    translations.plural = catalog.plural
            self.cache[key] = translations
        return self.cache[key]


class PointsBabel(Babel):
    @cached_property
    def domain_instance(self) -> Domain:
        return CatalogDomain(domain=self.domain)


# One MetaData for every layer: the ledger's tables and the app's are migrated together.
db = SQLAlchemy(metadata=ledger.Base.metadata)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
babel = PointsBabel()


class UtcDateTime(fields.DateTime):
    """A stored moment (naive UTC) sent with its offset, as the OpenAPI date-time wants."""

    def _serialize(self, value, attr, obj, **kwargs):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return super()._serialize(value, attr, obj, **kwargs)


class ErrorSchema(Schema):
    """Every API failure: a code, a message in the caller's language, errors by field."""

    code = fields.String(required=True)
    message = fields.String(required=True)
    errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))


class PointsApi(Api):
    ERROR_SCHEMA = ErrorSchema


api = PointsApi()

