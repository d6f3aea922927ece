"""Import every model, so that the metadata (and so each migration) sees all tables."""

from ledger import Account, Asset, Balance, Flow, Hold, Posting, Transaction  # noqa: F401
from merchants.models import Item, Merchant, Redemption, Statement, StatementLine  # noqa: F401
from pointsmall.auth.models import ApiToken, AttemptCounter, SignInName, User  # noqa: F401
from pointsmall.core.audit import AuditEntry  # noqa: F401
from pointsmall.earning.models import (  # noqa: F401
    Activity,
    ActivityType,
    Attendance,
    Award,
    AwardBatch,
    EarningRules,
    Evaluation,
    EvaluationEntry,
    PlatformTask,
)
from pointsmall.jobs.models import BackgroundJob  # noqa: F401
from pointsmall.people.communities import Community, Grid  # noqa: F401
from pointsmall.people.models import Volunteer  # noqa: F401
from pointsmall.reports.models import LedgerCheck  # noqa: F401
from pointsmall.tasks.models import Assignment, Task, Wish  # noqa: F401
