"""schemathesis hooks for tests/fuzz/schemathesis.sh (loaded through SCHEMATHESIS_HOOKS).

schemathesis.toml lets a few operations answer a schema-valid request with 412 or 422, for
rules the document cannot express as a schema. This check keeps that allowance narrow: a 412
only when the request sent If-Match, a 422 only when every detail names one of those rules.
Any other refusal of a schema-valid request is a mismatch between openapi.json and the service.
"""

import re

import schemathesis

# (field, message) of the state- and cross-field rules of src/admin.rs and src/rules/compile.rs.
RULES_NO_SCHEMA_CAN_STATE = [
    (r"key", r"is immutable\b"),
    (r"epoch", r"must be at least \d+: a rollout '[^']*' was deleted at epoch \d+"),
    (r"epoch", r"cannot go down: rollout '[^']*' is at epoch \d+"),
    (r"sticky\.cookie_name", r"cookie '[^']*' is already used by rollout '[^']*'"),
    (r"version", r"rollout '[^']*' has no version \d+"),
    (r"rules\[\d+\]\.id", r"duplicate rule id '[^']*'"),
    # A schedule's steps in strictly increasing time order (across items of one array).
    (r"schedule\.steps\[\d+\]\.at", r"must be later than steps\[\d+\]\.at "),
    # `done` only once every step is behind the schedule (the service's progress).
    (r"schedule\.state", r'cannot be "done" with \d+ of \d+ steps pending'),
    # A guard window within what this deployment keeps counts for (guards.max_window_seconds).
    (r"guard\.window_seconds", r"must be at most \d+: login outcomes are kept for guards\.max_window_seconds"),
    # A schedule patch without steps, on a rollout that has no schedule to merge it into.
    (r"schedule\.steps", r"required$"),
]


def _explained(detail):
    return any(
        re.fullmatch(field, detail.get("field", "")) and re.match(message, detail.get("message", ""))
        for field, message in RULES_NO_SCHEMA_CAN_STATE
    )


@schemathesis.check
def refusals_of_valid_requests_are_state_rules(ctx, response, case):
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return None
    if response.status_code == 412:
        sent = {name.lower() for name in (case.headers or {})}
        if "if-match" not in sent:
            raise AssertionError("412 for a valid request that sent no If-Match")
    elif response.status_code == 422:
        details = response.json().get("error", {}).get("details", [])
        unexplained = [d for d in details if not _explained(d)]
        if not details or unexplained:
            raise AssertionError(
                "422 for a schema-valid request, not for a rule the schema cannot state: "
                + "; ".join(f"{d.get('field')}: {d.get('message')}" for d in unexplained or details)
            )
    return None
