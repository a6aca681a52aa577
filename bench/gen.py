#!/usr/bin/env python3
"""Helpers for bench/load.sh (standard library only).

  gen.py rollout                      the benchmark rollout (10 rules, one with 1,000 CIDRs)
  gen.py create URL TOKEN FILE        POST FILE to URL/v1/rollouts (201 expected)
  gen.py mint URL TOKEN N ROLLOUT     N valid sticky cookie values, minted by the service itself
  gen.py bodies COOKIES N ROLLOUT     N varied decide request bodies, one JSON per line
  gen.py rollouts URL TOKEN N         create N rollouts, each with a few rules and its own cookie
  gen.py freeport                     a free TCP port on 127.0.0.1
"""

import base64
import json
import random
import socket
import sys
import urllib.error
import urllib.request

# Same CIDR shape as benches/evaluation.rs: 11.0.0.0/24 .. 14.249.x.0/24.
def cidrs():
    return [f"{11 + i // 250}.{i % 250}.{(i * 7) % 250}.0/24" for i in range(1000)]


def ip_in_cidrs(rng):
    i = rng.randrange(1000)
    return f"{11 + i // 250}.{i % 250}.{(i * 7) % 250}.{rng.randrange(1, 255)}"


def b64(obj):
    raw = json.dumps(obj, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# Issuer of project "project-test-bench" (bench/load.sh configures stytch.project_id so).
STYTCH_JWT = ".".join([b64({"alg": "RS256", "typ": "JWT"}),
                       b64({"iss": "stytch.com/project-test-bench", "sub": "user-test-1", "exp": 1900000000}),
                       "c2lnbmF0dXJl"])

TESTERS = [f"tester-{i}@example.com" for i in range(100)]


def rollout(key="bench-login", cookie="sy_bench"):
    return {
        "key": key,
        "description": "load benchmark: 10 rules, 1,000 CIDRs, GeoIP, sticky cookies",
        "percentage": 25,
        "salt": "bench-salt-0001",
        "sticky": {"cookie_name": cookie, "max_age_seconds": 2592000},
        "rules": [
            {"id": "offices", "when": {"ip_ranges": cidrs()}, "then": "stytch"},
            {"id": "testers", "when": {"user_keys": TESTERS}, "then": "stytch"},
            {"id": "old-ios", "when": {"platforms": ["ios"], "app_version": "<5.2.0"}, "then": "legacy"},
            {"id": "android", "when": {"platforms": ["android"], "app_version": "<4.0.0"}, "then": "legacy"},
            {"id": "de", "when": {"countries": ["DE", "AT", "CH"]}, "then": "legacy"},
            {"id": "oceania", "when": {"continents": ["OC"]}, "then": {"percentage": 5}},
            {"id": "washington", "when": {"subdivisions": ["US-WA"]}, "then": {"percentage": 10}},
            {"id": "beta", "when": {"app_version": ">=9.0.0"}, "then": "stytch"},
            {"id": "v6-lab", "when": {"ip_ranges": ["2001:db8::/32"]}, "then": "stytch"},
            {"id": "uk-web", "when": {"countries": ["GB"], "platforms": ["web"]}, "then": {"percentage": 50}},
        ],
    }


def request(method, url, token, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def create(url, token, path):
    with open(path) as f:
        body = json.load(f)
    status, answer = request("POST", f"{url}/v1/rollouts", token, body)
    if status != 201:
        sys.exit(f"gen.py create: {status} {answer}")


def mint(url, token, n, key):
    """Asks the service for N fresh devices' sticky cookies (decide without a cookie)."""
    seen = 0
    for i in range(n * 4):
        status, answer = request("POST", f"{url}/v1/decide", token,
                                 {"rollout": key, "device_id": f"mint-{i:06d}"})
        if status != 200:
            sys.exit(f"gen.py mint: {status} {answer}")
        cookie = answer.get("set_cookie")
        if cookie:
            print(cookie["value"])
            seen += 1
            if seen == n:
                return
    sys.exit("gen.py mint: the service issued too few cookies (is sticky on?)")


def bodies(cookies_path, n, key, cookie_name="sy_bench"):
    with open(cookies_path) as f:
        cookies = [line.strip() for line in f if line.strip()]
    rng = random.Random(20240611)
    geo_known = ["81.2.69.142", "216.160.83.56", "89.160.20.112", "81.2.69.160", "2001:db8::7"]
    for i in range(n):
        body = {"rollout": key, "device_id": f"d-{rng.getrandbits(48):012x}"}
        r = rng.random()
        if r < 0.02:
            body["user_key"] = rng.choice(TESTERS)
        elif r < 0.65:
            body["user_key"] = f"user-{rng.randrange(10_000_000):07d}@example.com"
        r = rng.random()
        if r < 0.20:
            body["ip"] = ip_in_cidrs(rng)  # matches the 1,000-CIDR rule: forced to stytch
        elif r < 0.55:
            body["ip"] = rng.choice(geo_known)  # GB / US-WA / SE in the GeoIP test database
        elif r < 0.90:
            body["ip"] = f"198.51.{rng.randrange(256)}.{rng.randrange(1, 255)}"  # not in the database
        if rng.random() < 0.05:
            body["country"] = rng.choice(["DE", "AU", "FR"])
        body["platform"] = rng.choice(["web", "web", "web", "ios", "android"])
        body["app_version"] = rng.choice(["5.3.1", "5.1.0", "4.9.2", "9.1.0", "6.0.0"])
        r = rng.random()
        if r < 0.25:
            body["session_token"] = f"{rng.getrandbits(128):032x}"  # opaque: legacy
        elif r < 0.35:
            body["session_token"] = STYTCH_JWT  # a Stytch session of the configured project
        if cookies and rng.random() < 0.5:
            body["cookies"] = {cookie_name: rng.choice(cookies)}
        print(json.dumps(body, separators=(",", ":")))


def rollouts(url, token, n):
    for i in range(n):
        body = {
            "key": f"r-{i:03d}",
            "description": f"rollout {i} of {n}",
            "percentage": (i * 7) % 100,
            "sticky": {"cookie_name": f"sy_r{i:03d}", "max_age_seconds": 2592000},
            "rules": [
                {"id": "office", "when": {"ip_ranges": [f"10.{i}.0.0/16", "2001:db8::/32"]}, "then": "stytch"},
                {"id": "testers", "when": {"user_keys": [f"qa-{i}-{j}@example.com" for j in range(5)]}, "then": "stytch"},
                {"id": "old-ios", "when": {"platforms": ["ios"], "app_version": "<5.0.0"}, "then": "legacy"},
                {"id": "eu", "when": {"continents": ["EU"]}, "then": {"percentage": 10}},
            ],
        }
        status, answer = request("POST", f"{url}/v1/rollouts", token, body)
        if status != 201:
            sys.exit(f"gen.py rollouts: {status} {answer}")


def freeport():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])


def main(argv):
    if not argv:
        sys.exit(__doc__)
    cmd, args = argv[0], argv[1:]
    if cmd == "rollout":
        json.dump(rollout(), sys.stdout)
    elif cmd == "create":
        create(*args)
    elif cmd == "mint":
        mint(args[0], args[1], int(args[2]), args[3])
    elif cmd == "bodies":
        bodies(args[0], int(args[1]), args[2])
    elif cmd == "rollouts":
        rollouts(args[0], args[1], int(args[2]))
    elif cmd == "freeport":
        freeport()
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
