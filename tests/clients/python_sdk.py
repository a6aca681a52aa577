"""The real openfeature-sdk with openfeature-provider-ofrep against Switchyard (run by
tests/clients/run.sh): every evaluation equals POST /v1/decide for the same input; an unknown
flag, a missing targeting key, a bad context and a wrong token take the SDK's own error paths
with the default value."""

import os
import time

import requests
from openfeature import api
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

SY = os.environ["SY_URL"]
ADMIN = os.environ["SY_ADMIN_TOKEN"]
DECIDE = os.environ["SY_DECIDE_TOKEN"]
OFREP_REASON = {
    "disabled": "DISABLED", "override_cookie": "TARGETING_MATCH", "rule": "TARGETING_MATCH",
    "enrolled": "TARGETING_MATCH", "sticky_cookie": "TARGETING_MATCH", "percentage": "SPLIT",
}


def call(method, path, token, body):
    response = requests.request(method, SY + path, json=body, timeout=5,
                                headers={"Authorization": f"Bearer {token}"})
    return response.status_code, response.json()


def decide_for(rollout, targeting_key, attributes):
    body = {"rollout": rollout, **attributes}
    if targeting_key is not None:
        body["user_key"] = targeting_key
    status, answer = call("POST", "/v1/decide", DECIDE, body)
    assert status == 200, answer
    return answer


def metadata_of(decided):
    metadata = {"reason": decided["reason"], "bucket": decided["bucket"],
                "version": decided["version"], "session_action": decided["session"]["action"]}
    if decided["rule"] is not None:
        metadata["rule"] = decided["rule"]
    if decided["set_cookie"] is not None:
        metadata["set_cookie_name"] = decided["set_cookie"]["name"]
        metadata["set_cookie_value"] = decided["set_cookie"]["value"]
        metadata["set_cookie_max_age"] = decided["set_cookie"]["max_age_seconds"]
    return metadata


key = f"ofrep-python-{os.getpid()}-{int(time.time()) % 100000}"
status, rollout = call("POST", "/v1/rollouts", ADMIN, {
    "key": key, "percentage": 40,
    "rules": [{"id": "office", "when": {"ip_ranges": ["203.0.113.0/24"]}, "then": "stytch"},
              {"id": "uk-half", "when": {"countries": ["GB"]}, "then": {"percentage": 50}}]})
assert status == 201, rollout
cookie = rollout["sticky"]["cookie_name"]

# As the README says: the provider with the decide token, as a bearer token or an X-API-Key.
api.set_provider(OFREPProvider(SY, headers_factory=lambda: {"Authorization": f"Bearer {DECIDE}"}))
api.set_provider(OFREPProvider(SY, headers_factory=lambda: {"X-API-Key": DECIDE}), "api-key")
api.set_provider(OFREPProvider(SY, headers_factory=lambda: {"Authorization": "Bearer not-a-token"}),
                 "wrong-token")
clients = {"bearer": api.get_client(), "x-api-key": api.get_client("api-key")}

# A device sent to Stytch once keeps going there through its sticky cookie.
for i in range(200):
    device = f"d-python-{i}"
    first = decide_for(key, None, {"device_id": device, "country": "US"})
    if first["flow"] == "stytch":
        break
assert first["flow"] == "stytch" and first["set_cookie"], first

cases = [
    ("alice@example.com", {"ip": "198.51.100.7", "country": "US", "platform": "web"}),
    ("bob@example.com", {"ip": "203.0.113.9", "platform": "ios", "app_version": "5.1.0"}),
    ("carol@example.com", {"country": "GB", "session_token": "opaque-legacy-token"}),
    ("dave@example.com", {"device_id": device, "cookies": {cookie: first["set_cookie"]["value"]}}),
    (None, {"device_id": "d-python-x", "ip": "2001:db8::1", "cookies": {"other": "x"}}),
]
reasons = set()
for targeting_key, attributes in cases:
    for name, client in clients.items():
        details = client.get_string_details(key, "legacy", EvaluationContext(targeting_key, attributes))
        decided = decide_for(key, targeting_key, attributes)
        what = f"{name} {targeting_key} {attributes}"
        assert details.error_code is None, (what, details.error_code, details.error_message)
        assert details.value == decided["flow"], what
        assert details.variant == decided["flow"], what
        assert details.reason == Reason[OFREP_REASON[decided["reason"]]], what
        assert dict(details.flag_metadata) == metadata_of(decided), (what, details.flag_metadata)
        reasons.add(decided["reason"])
assert reasons == {"percentage", "rule", "sticky_cookie"}, reasons

context = EvaluationContext("alice@example.com", {"country": "US"})
unknown = clients["bearer"].get_string_details("no-such-rollout", "legacy", context)
assert unknown.error_code == ErrorCode.FLAG_NOT_FOUND and unknown.value == "legacy", unknown
assert unknown.reason == Reason.ERROR, unknown

no_key = clients["bearer"].get_string_details(key, "legacy", EvaluationContext(None, {"country": "GB"}))
assert no_key.error_code == ErrorCode.TARGETING_KEY_MISSING and no_key.value == "legacy", no_key

bad_ip = clients["bearer"].get_string_details(key, "legacy", EvaluationContext("erin", {"ip": "x"}))
assert bad_ip.error_code == ErrorCode.INVALID_CONTEXT and "context.ip" in bad_ip.error_message, bad_ip

wrong = api.get_client("wrong-token").get_string_details(key, "stytch", context)
assert wrong.reason == Reason.ERROR and wrong.error_code == ErrorCode.GENERAL, wrong
assert wrong.value == "stytch" and wrong.error_message == "unauthorized", wrong

api.shutdown()
print(f"python-sdk: {len(cases) * 2} evaluations equal decide ({', '.join(sorted(reasons))}); "
      "FLAG_NOT_FOUND, TARGETING_KEY_MISSING, INVALID_CONTEXT and a wrong token give the default")
