"""Schemathesis against /api/openapi.json: every operation, as every role, answers within
its documented statuses and schemas, and never with a 500, for valid data and for data
that breaks the schema. (Unknown query parameters are ignored, as webargs does, so
"negative data is rejected" is not asked.)

The calls go through the WSGI app (no server) in the world of test_scoping.py, so a
volunteer has history and redemptions, a merchant has codes, staff have activities.
Each role's calls carry its own bearer token. Hypothesis is derandomised, so a CI run
is repeatable; FUZZ_EXAMPLES=100 runs a deeper search by hand.
"""

import os

import pytest
import schemathesis
import test_scoping
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis import checks as st_checks

from pointsmall.extensions import db

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "6"))
CHECKS = [st_checks.not_a_server_error, st_checks.status_code_conformance,
          st_checks.content_type_conformance, st_checks.response_schema_conformance,
          st_checks.response_headers_conformance]
# The world of test_scoping, built once for this module too.
built, world_app = test_scoping.built, test_scoping.world_app
ROLES = ["staff", "volunteer", "merchant", "admin", "anonymous"]


def fuzz(schema, headers: dict, mode: GenerationMode, checks: list) -> dict[str, str]:
    """Run every operation with generated requests; return each failing one's report."""
    failures = {}
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                  phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck))
        def call(case):
            try:
                case.call_and_validate(headers=headers, checks=checks)
            finally:
                db.session.rollback()  # a failed request must not poison the next

        try:
            call()
        # Schemathesis raises a FailureGroup (an exception group) naming every failure.
        except (Exception, BaseExceptionGroup) as error:
            failures[f"{operation.label} ({mode.value})"] = str(error)[:2000]
    return failures


@pytest.mark.parametrize("role", ROLES)
def test_every_api_operation_keeps_to_its_documented_answers(world_app, role):
    app, world = world_app
    headers = {"Authorization": f"Bearer {world.tokens[role]}"} if role in world.tokens else {}
    me = app.test_client().get("/api/v1/me", headers=headers)
    assert me.status_code == (401 if role == "anonymous" else 200)
    assert role == "anonymous" or me.get_json()["role"] == role, "the token is the role's"
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    assert len(list(schema.get_all_operations())) >= 40, "the document lost operations"

    failures = fuzz(schema, headers, GenerationMode.POSITIVE, CHECKS)
    failures |= fuzz(schema, headers, GenerationMode.NEGATIVE, CHECKS)

    assert not failures, "\n\n".join(f"== {label}\n{report}"
                                     for label, report in failures.items())
