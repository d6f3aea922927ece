"""Schemathesis against /api/openapi.json, as every kind of caller: each answer keeps to the
OpenAPI document (its statuses, content types, headers and bodies) and none is a 500.

The calls go through the WSGI app (no server) in the world of test_scoping.py, so a
volunteer has history and redemptions, a merchant has codes, staff have activities.
Each caller runs the operations it may call (and those everyone may); the anonymous
caller runs them all, and the grid platform signs its calls. Schemathesis runs its
examples, coverage (boundary values, wrong types, missing parts, undeclared methods) and
fuzzing phases, derandomised so that a CI run is repeatable; FUZZ_EXAMPLES=100 searches
deeper by hand. The tests after it pin down what the conformance run first found.
"""

import json
import os
import time

import pytest
import schemathesis
import sqlalchemy as sa
import test_scoping
from schemathesis import checks as st_checks
from schemathesis.config import SchemathesisConfig
from schemathesis.pytest.lazy import get_all_tests
from schemathesis.specs.openapi import checks as openapi_checks

from pointsmall.auth.models import User
from pointsmall.auth.service import create_token
from pointsmall.earning import platform
from pointsmall.earning.models import EarningRules
from pointsmall.extensions import db

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
CHECKS = [st_checks.not_a_server_error, st_checks.status_code_conformance,
          st_checks.content_type_conformance, st_checks.response_headers_conformance,
          st_checks.response_schema_conformance,
          # The coverage phase's own: undeclared methods answer 405 with Allow; a missing
          # required header and data the document forbids are refused.
          openapi_checks.unsupported_method, openapi_checks.missing_required_header,
          openapi_checks.negative_data_rejection]
# The world of test_scoping, built once for this module too.
built, world_app = test_scoping.built, test_scoping.world_app

EVERYONE = r"^/api/v1/(me|auth/tokens)"
OPERATIONS = {
    "staff": rf"{EVERYONE}|^/api/v1/(volunteers|grids|staff)(/|$)",
    "volunteer": rf"{EVERYONE}|^/api/v1/(items|redemptions|me/|activities|check-ins)",
    "merchant": rf"{EVERYONE}|^/api/v1/merchant/",
    "admin": EVERYONE,
    "anonymous": r".",
    "platform": r"^/api/v1/platform/",
}


def conformance_config(headers: dict, token_id: int | None) -> SchemathesisConfig:
    return SchemathesisConfig.from_dict({
        "seed": 20261207,
        "headers": headers,
        # Revoking the caller's own token would leave the rest of the run 401s: the
        # DELETE revokes a token kept for it.
        "parameters": {"path.token_id": token_id} if token_id else {},
        "generation": {"max-examples": EXAMPLES, "deterministic": True, "no-shrink": True,
                       "database": "none"},
        "phases": {"stateful": {"enabled": False}},
        "checks": {"negative_data_rejection": {
            # An over-long address is refused too, with the documented 414.
            "expected-statuses": ["400", "401", "403", "404", "405", "406", "409", "413",
                                  "414", "415", "422", "428", "429", "5xx"]}},
    })


def run_as(app, world, role: str) -> tuple[int, dict[str, str]]:
    """Run every operation `role` may call; return the number of calls and the failures."""
    headers, token_id = {}, None
    if role in world.tokens:
        headers = {"Authorization": f"Bearer {world.tokens[role]}"}
        user = db.session.get(User, int(world.sessions[role].split(":")[0]))
        token_id = create_token(db.session, user, "revoked by the conformance run")[0].id
        db.session.commit()
    schema = schemathesis.openapi.from_wsgi(
        "/api/openapi.json", app, config=conformance_config(headers, token_id)
    ).include(path_regex=OPERATIONS[role])
    calls = 0

    def call(case):
        nonlocal calls
        calls += 1
        try:
            if role == "platform":
                signed_call(app, world, case)
            else:
                case.call_and_validate(checks=CHECKS)
        finally:
            db.session.rollback()  # a failed request must not poison the next

    failures = {}
    for result in get_all_tests(schema=schema, test_func=call, settings=None,
                                given_kwargs=None):
        operation, test = result.ok()
        try:
            test()
        # Schemathesis raises a FailureGroup (an exception group) naming every failure.
        except (Exception, BaseExceptionGroup) as error:
            failures[operation.label] = str(error)[:3000]
    return calls, failures


@pytest.mark.parametrize("role", list(OPERATIONS))
def test_every_api_answer_keeps_to_the_openapi_document(world_app, role):
    app, world = world_app
    started = time.monotonic()

    calls, failures = run_as(app, world, role)

    print(f"{role}: {calls} calls in {time.monotonic() - started:.1f} s")
    assert calls > 0
    assert not failures, "\n\n".join(f"== {label}\n{report}"
                                     for label, report in failures.items())


def signed_call(app, world, case):
    """Call as the grid platform: sign the body the way the platform does."""
    sent = case.as_transport_kwargs()
    body = sent.pop("json", None)
    raw = (json.dumps(body).encode() if body is not None else sent.pop("data", b"") or b"")
    community_id = body.get("community_id") if isinstance(body, dict) else None
    secret = db.session.scalar(sa.select(EarningRules.platform_secret).where(
        EarningRules.community_id == (community_id if isinstance(community_id, int)
                                      and 0 < community_id < 2**31 else world.a_id)))
    stamp = str(int(time.time()))
    headers = {**sent.pop("headers", {}), "Content-Type": "application/json",
               "X-Timestamp": stamp, "X-Signature": platform.signature(secret or "", stamp, raw)}
    response = app.test_client().open(sent.pop("path"), method=sent.pop("method"),
                                      headers=headers, data=raw,
                                      query_string=sent.get("query_string"))
    case.validate_response(response, checks=CHECKS)
