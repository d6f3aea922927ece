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
import re
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest
import schemathesis
import sqlalchemy as sa
from schemathesis import checks as st_checks
from schemathesis.config import SchemathesisConfig
from schemathesis.pytest.lazy import get_all_tests
from schemathesis.specs.openapi import checks as openapi_checks

from pointsmall.auth.models import User
from pointsmall.auth.service import create_token
from pointsmall.core.api_conventions import MAX_ROW_ID
from pointsmall.earning import platform
from pointsmall.earning.models import EarningRules
from pointsmall.extensions import db
from tests.core import test_scoping

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

EVERYONE = r"^/api/v1/(me|auth/tokens(/\{token_id\})?)$"
OPERATIONS = {
    "staff": rf"{EVERYONE}|^/api/v1/(volunteers|grids|staff)(/|$)",
    "volunteer": rf"{EVERYONE}|^/api/v1/(items|redemptions|me/|activities|check-ins)",
    "merchant": rf"{EVERYONE}|^/api/v1/merchant/",
    "admin": EVERYONE,
    "anonymous": r".",
    "platform": r"^/api/v1/platform/",
}


def conformance_config(headers: dict, token_id: int | None,
                       examples: int) -> SchemathesisConfig:
    return SchemathesisConfig.from_dict({
        "seed": 20261207,
        "headers": headers,
        # Revoking the caller's own token would leave the rest of the run 401s: the
        # DELETE revokes a token kept for it.
        "parameters": {"path.token_id": token_id} if token_id else {},
        "generation": {"max-examples": examples, "deterministic": True, "no-shrink": True,
                       "database": "none"},
        "phases": {"stateful": {"enabled": False}},
        "checks": {"negative_data_rejection": {
            # An over-long address is refused too, with the documented 414.
            "expected-statuses": ["400", "401", "403", "404", "405", "406", "409", "413",
                                  "414", "415", "422", "428", "429", "5xx"]}},
    })


@dataclass
class Run:
    """What one caller's run did: operations, the statuses answered (but to OPTIONS), the
    failures."""

    operations: int = 0
    statuses: Counter = field(default_factory=Counter)
    failures: dict[str, str] = field(default_factory=dict)


def run_as(app, world, role: str) -> Run:
    """Run every operation `role` may call."""
    headers, token_id = {}, None
    if role in world.tokens:
        headers = {"Authorization": f"Bearer {world.tokens[role]}"}
        user = db.session.get(User, int(world.sessions[role].split(":")[0]))
        token_id = create_token(db.session, user, "revoked by the conformance run")[0].id
        db.session.commit()
    schema = schemathesis.openapi.from_wsgi(
        "/api/openapi.json", app, config=conformance_config(
            headers, token_id,
            # Refused at the door (401), fuzzing finds nothing the coverage phase did not.
            min(EXAMPLES, 5) if role == "anonymous" else EXAMPLES),
    ).include(path_regex=OPERATIONS[role])
    run = Run()

    def call(case):
        try:
            if role == "platform":
                response = signed_call(app, world, case)
            else:
                response = case.call(headers=headers)
            if case.method.upper() != "OPTIONS":  # Flask answers those, with Allow
                run.statuses[response.status_code] += 1
            case.validate_response(response, checks=CHECKS, headers=headers)
        finally:
            db.session.rollback()  # a failed request must not poison the next

    for result in get_all_tests(schema=schema, test_func=call, settings=None,
                                given_kwargs=None):
        operation, test = result.ok()
        run.operations += 1
        try:
            test()
        # Schemathesis raises a FailureGroup (an exception group) naming every failure.
        except (Exception, BaseExceptionGroup) as error:
            run.failures[operation.label] = str(error)[:3000]
    return run


@pytest.mark.parametrize("role", list(OPERATIONS))
def test_every_api_answer_keeps_to_the_openapi_document(world_app, role):
    app, world = world_app
    started = time.monotonic()

    run = run_as(app, world, role)

    print(f"{role}: {run.operations} operations, {run.statuses.total()} calls in "
          f"{time.monotonic() - started:.1f} s: {dict(sorted(run.statuses.items()))}")
    assert not run.failures, "\n\n".join(f"== {label}\n{report}"
                                         for label, report in run.failures.items())
    assert run.operations >= (40 if role == "anonymous" else 1), "the document lost operations"
    if role == "anonymous":  # refused, never served
        assert set(run.statuses) <= {400, 401, 404, 405, 414, 422, 429}
    else:  # the caller got through: it was not refused at the door all along
        assert run.statuses[200] + run.statuses[201] > 0
    if role in world.tokens:
        me = app.test_client().get("/api/v1/me", headers={
            "Authorization": f"Bearer {world.tokens[role]}"})
        assert me.status_code == 200, "the run revoked the caller's own token"


def signed_call(app, world, case):
    """Call as the grid platform of community A: sign the body the way the platform does.

    A valid community or volunteer id drawn at random names nobody in this world (the
    answer would always be 401 or 422): it becomes A's, or A's volunteer, as valid an id.
    """
    if isinstance(case.body, dict):
        for name, own in (("community_id", world.a_id),
                          ("volunteer_id", world.ids["volunteer_id"])):
            drawn = case.body.get(name)
            if type(drawn) is int and 1 <= drawn <= MAX_ROW_ID:
                case.body[name] = own
    sent = case.as_transport_kwargs()
    body = sent.pop("json", None)
    raw = (json.dumps(body).encode() if body is not None else sent.pop("data", b"") or b"")
    secret = db.session.scalar(sa.select(EarningRules.platform_secret).where(
        EarningRules.community_id == world.a_id))
    stamp = str(int(time.time()))
    signed = {"X-Timestamp": stamp, "X-Signature": platform.signature(secret, stamp, raw)}
    headers = {**sent.pop("headers", {}), "Content-Type": "application/json"}
    # A case without one of the two headers tests that it is required: leave it out.
    headers |= {name: value for name, value in signed.items() if name in headers}
    return app.test_client().open(sent.pop("path"), method=sent.pop("method"), headers=headers,
                                  data=raw, query_string=sent.get("query_string"))


# ---- what the conformance run first found -------------------------------------------------

def as_caller(world, role: str) -> dict:
    return {"Authorization": f"Bearer {world.tokens[role]}"}


def assert_error_shape(answer, status: int) -> dict:
    assert answer.status_code == status, answer.get_data(as_text=True)[:300]
    assert answer.mimetype == "application/json"
    said = answer.get_json()
    assert set(said) == {"code", "message", "errors"} and said["message"]
    return said


def test_an_undeclared_method_answers_405_naming_the_allowed_ones(world_app):
    app, world = world_app

    answer = app.test_client().put("/api/v1/me", headers=as_caller(world, "staff"))

    assert_error_shape(answer, 405)
    assert {"GET"} <= {m.strip() for m in answer.headers["Allow"].split(",")}


def test_a_patch_without_a_body_is_refused_with_400_and_changes_nothing(world_app):
    app, world = world_app
    url = f"/api/v1/volunteers/{world.ids['volunteer_id']}"
    before = test_scoping.snapshot(world)

    answer = app.test_client().patch(url, headers=as_caller(world, "staff"))

    said = assert_error_shape(answer, 400)
    assert said["errors"] == {"json": ["请求须带 JSON 正文。"]}
    assert test_scoping.snapshot(world) == before


def test_a_body_sent_as_something_else_than_json_is_refused_with_400(world_app):
    app, world = world_app

    answer = app.test_client().post("/api/v1/staff/tiers/preview", data="bronze=1",
                                    headers={**as_caller(world, "staff"),
                                             "Content-Type": "text/plain"})

    assert_error_shape(answer, 400)


def test_an_over_long_address_answers_a_json_414_from_the_app(world_app):
    app, world = world_app
    limit = app.config["MAX_URL_LENGTH"]
    base = "/api/v1/volunteers?q="
    headers = as_caller(world, "staff")

    too_long = app.test_client().get(base + "x" * (limit - len(base) + 1), headers=headers)
    just_fits = app.test_client().get(base + "x" * (limit - len(base)), headers=headers)

    said = assert_error_shape(too_long, 414)
    assert said["message"] == "地址过长。"
    assert just_fits.status_code == 422  # a search of 4000 letters: too long a search only


def test_an_id_no_row_can_have_is_not_found(world_app):
    app, world = world_app

    answer = app.test_client().get("/api/v1/volunteers/9223372036854775808",
                                   headers=as_caller(world, "staff"))

    assert_error_shape(answer, 404)


def test_a_json_boolean_is_true_or_false_not_a_number(world_app):
    app, world = world_app
    url = f"/api/v1/staff/activities/{world.ids['activity_id']}/attendance"
    before = test_scoping.snapshot(world)

    answer = app.test_client().post(url, json={"volunteer_ids": [world.ids["volunteer_id"]],
                                               "present": 0},
                                    headers=as_caller(world, "staff"))

    assert "present" in assert_error_shape(answer, 422)["errors"]
    assert test_scoping.snapshot(world) == before


def test_the_document_names_every_failure_and_no_catch_all(world_app):
    app, _ = world_app

    doc = app.test_client().get("/api/openapi.json").get_json()

    operations = {(method, path): operation for path, item in doc["paths"].items()
                  for method, operation in item.items() if method != "parameters"}
    for (method, path), operation in operations.items():
        said = operation["responses"]
        assert "default" not in said, f"{method} {path}"
        assert {"414", "503"} <= set(said), f"{method} {path}"
        if "{" in path:
            assert "404" in said, f"{method} {path}"
        if "requestBody" in operation:
            assert {"400", "413"} <= set(said), f"{method} {path}"
        if "429" in said:
            assert said["429"]["headers"]["Retry-After"]["required"], f"{method} {path}"
    assert operations[("post", "/api/v1/auth/tokens")]["security"] == []
    assert "405" in doc["info"]["description"] and "Allow" in doc["info"]["description"]
    item = doc["paths"]["/api/v1/items/{item_id}"]["parameters"][0]["schema"]
    assert (item["minimum"], item["maximum"]) == (1, 2**31 - 1)


@pytest.mark.parametrize("phone", ["13800000001", "138-0000-0001", " 139 1234 5678 ",
                                   "12800000001", "1380000000", "138000000012", "abc",
                                   "", "+8613800000001"])
def test_the_documented_phone_pattern_is_the_one_the_service_checks(world_app, phone):
    from pointsmall.people import service

    app, _ = world_app
    doc = app.test_client().get("/api/openapi.json").get_json()
    pattern = doc["components"]["schemas"]["VolunteerCreate"]["properties"]["phone"]["pattern"]

    documented = re.search(pattern, phone) is not None

    assert documented == bool(service.PHONE.match(service.normalise_phone(phone)))
