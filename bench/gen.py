#!/usr/bin/env python3
"""Helpers for bench/load.sh (standard library only).

  gen.py rollout                      the benchmark rollout (10 rules, one with 1,000 CIDRs)
  gen.py create URL TOKEN FILE        POST FILE to URL/v1/rollouts (201 expected)
  gen.py mint URL TOKEN N ROLLOUT     N valid sticky cookie values, minted by the service itself
  gen.py bodies COOKIES N ROLLOUT     N varied decide request bodies, one JSON per line
  gen.py first-visits N ROLLOUT       N first-visit bodies: no cookie, N distinct client addresses
  gen.py ofrep FILE                   the decide bodies of FILE as OFREP evaluation bodies (SPEC §10:
                                      `{"context": ...}`, user_key as targetingKey, no rollout)
  gen.py forward-auth FILE            the decide bodies of FILE as forward-auth requests (SPEC §11): one
                                      line of tab-separated `Name: value` headers each (X-User-Key,
                                      X-Forwarded-For, X-Country, X-App-Platform, X-App-Version,
                                      Authorization: Bearer, Cookie; bench/forward_auth.lua sends them)
  gen.py replay URL TOKEN FILE N [ROUTE]
                                      POST N bodies of FILE (cycling) to URL/v1/decide, one after
                                      another on one keep-alive connection; any non-200 fails
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


# Networks with records in the GeoIP test database (bench/load.sh uses GeoIP2-City-Test.mmdb):
# GB, US-WA, SE, CN, BT, PH. A random host in them is a distinct address with a real answer.
GEO_NETWORKS = [("81.2.69.", 160, 32), ("216.160.83.", 56, 8), ("89.160.20.", 128, 128),
                ("175.16.199.", 0, 256), ("67.43.156.", 0, 256)] + \
    [(f"202.196.{224 + i}.", 0, 256) for i in range(16)]


def ofrep(path):
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            context = json.loads(line)
            del context["rollout"]
            if "user_key" in context:
                context = {"targetingKey": context.pop("user_key"), **context}
            print(json.dumps({"context": context}, separators=(",", ":")))


def forward_auth(path):
    """Each decide body as the headers a proxy forwards: the user key in X-User-Key and the
    country in X-Country (bench/load.sh configures forward_auth.user_key_header and
    country_header so), the address in X-Forwarded-For (the load generator is on loopback, a
    trusted proxy), the session token as a bearer token, the cookies in Cookie. A body with
    only a device id and no cookie is a new device (forward-auth draws its id)."""
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            body = json.loads(line)
            headers = []
            if "user_key" in body:
                headers.append(("X-User-Key", body["user_key"]))
            if "ip" in body:
                headers.append(("X-Forwarded-For", body["ip"]))
            if "country" in body:
                headers.append(("X-Country", body["country"]))
            headers.append(("X-App-Platform", body["platform"]))
            headers.append(("X-App-Version", body["app_version"]))
            if "session_token" in body:
                headers.append(("Authorization", "Bearer " + body["session_token"]))
            if body.get("cookies"):
                headers.append(("Cookie", "; ".join(f"{k}={v}" for k, v in body["cookies"].items())))
            print("\t".join(f"{k}: {v}" for k, v in headers))


def first_visits(n, key):
    """First visits that end at the percentage step (SPEC §3 step 6): no sticky cookie and no
    forcing rule matches, so every answer mints and signs a new cookie — after all ten rules are
    checked, the 1,000 CIDRs included. Every body from another client address: about 25 % just
    outside the 1,000 CIDRs (same /16, another /24), 25 % in networks the GeoIP test database
    knows, 35 % public addresses it does not know, 15 % IPv6 outside the lab range; so the
    per-thread GeoIP cache (1,024 slots) cannot answer from memory (n well above that)."""
    rng = random.Random(20261130)
    seen = set()
    lines = 0
    while lines < n:
        body = {"rollout": key, "device_id": f"d-{rng.getrandbits(64):016x}"}
        if rng.random() < 0.65:
            body["user_key"] = f"user-{rng.randrange(100_000_000):08d}@example.com"
        r = rng.random()
        if r < 0.25:
            i = rng.randrange(1000)
            near = ((i * 7) % 250 + 1 + rng.randrange(4)) % 256
            ip = f"{11 + i // 250}.{i % 250}.{near}.{rng.randrange(1, 255)}"
        elif r < 0.50:
            prefix, start, size = rng.choice(GEO_NETWORKS)
            ip = f"{prefix}{start + rng.randrange(size)}"
        elif r < 0.85:
            ip = f"{rng.randrange(100, 200)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        else:
            ip = f"2a02:{rng.getrandbits(16):x}:{rng.getrandbits(16):x}::{rng.getrandbits(16):x}"
        if ip in seen:  # a few known networks are small: draw again
            continue
        seen.add(ip)
        body["ip"] = ip
        # No forcing rule: no tester, no old iOS/Android, no beta version.
        body["platform"] = rng.choice(["web", "web", "web", "ios", "android"])
        body["app_version"] = rng.choice(["5.3.1", "5.2.0", "6.0.0", "8.7.2"])
        if rng.random() < 0.25:
            body["session_token"] = f"{rng.getrandbits(128):032x}"  # a legacy session
        print(json.dumps(body, separators=(",", ":")))
        lines += 1


def replay(url, token, path, n, route="/v1/decide"):
    """A fixed number of requests, one at a time on one connection: for instruction counts
    (bench/load.sh, callgrind), where the count of requests must be exact and nothing else may
    differ between the two servers. ROUTE /v1/forward-auth/...: FILE holds forward-auth header
    lines (gen.py forward-auth), sent as GETs with the token in X-Switchyard-Token."""
    import http.client
    from urllib.parse import urlsplit
    with open(path) as f:
        lines = [line.rstrip("\n") for line in f if line.strip()]
    address = urlsplit(url)
    conn = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
    forward_auth = route.startswith("/v1/forward-auth/")
    for i in range(n):
        line = lines[i % len(lines)]
        if forward_auth:
            headers = dict(field.split(": ", 1) for field in line.split("\t"))
            headers["X-Switchyard-Token"] = token
            conn.request("GET", route, headers=headers)
        else:
            headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}
            conn.request("POST", route, body=line.encode(), headers=headers)
        answer = conn.getresponse()
        text = answer.read()
        if answer.status != 200:
            sys.exit(f"gen.py replay: request {i} answered {answer.status}: {text[:300]!r}")
    conn.close()


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
    elif cmd == "first-visits":
        first_visits(int(args[0]), args[1])
    elif cmd == "ofrep":
        ofrep(args[0])
    elif cmd == "forward-auth":
        forward_auth(args[0])
    elif cmd == "replay":
        replay(args[0], args[1], args[2], int(args[3]), *args[4:5])
    elif cmd == "rollouts":
        rollouts(args[0], args[1], int(args[2]))
    elif cmd == "freeport":
        freeport()
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
