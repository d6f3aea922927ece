"""Flask extensions, created unbound and bound in create_app."""

from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

import ledger

# One MetaData for every layer: the ledger's tables and the app's are migrated together.
db = SQLAlchemy(metadata=ledger.Base.metadata)
migrate = Migrate()
