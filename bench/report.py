#!/usr/bin/env python3
"""Prints bench/load.sh's results (key=value lines) as Markdown tables, with the ratios
against the in-run baseline and the goals of issue 6."""

import statistics
import sys


def parse(path):
    rows = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            kind, fields = parts[0], {}
            for p in parts[1:] if "=" not in parts[0] else parts:
                if "=" in p:
                    k, v = p.split("=", 1)
                    fields[k] = v
            if "=" in parts[0]:
                kind = "meta"
            rows.append((kind, fields))
    return rows


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def mb(kb):
    return f"{num(kb) / 1024:.1f} MB"


def goal(ok):
    return "met" if ok else "**not met**"


def throughput(wrk, title, label, target):
    """The wrk table of one workload, its medians and the ratio against the baseline."""
    print(f"### {title}")
    print()
    print("| server | run | req/s | p50 µs | p99 µs | p99.9 µs | max µs | server CPU µs/req | server CPU % | server core % | load-gen core % | steal % |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for f in wrk:
        f["cpu_us_per_req"] = num(f.get("server_cpu")) / 100 * num(f["seconds"]) / num(f["requests"]) * 1e6
        print(f"| {f['server']} | {f['run']} | {num(f['rps']):,.0f} | {f['p50_us']} | {f['p99_us']} "
              f"| {f['p999_us']} | {f['max_us']} | {f['cpu_us_per_req']:.2f} | {f.get('server_cpu', '')} | {f.get('server_core_busy', '')} "
              f"| {f.get('loadgen_core_busy', '')} "
              f"| {f.get('steal', '')} |")
    med = {}
    for server in ("baseline", "switchyard"):
        runs = [f for f in wrk if f["server"] == server]
        if not runs:
            continue
        med[server] = {k: statistics.median(num(f[k]) for f in runs)
                       for k in ("rps", "p50_us", "p99_us", "p999_us", "cpu_us_per_req")}
        m = med[server]
        print(f"| **{server}** | median | **{m['rps']:,.0f}** | {m['p50_us']:.0f} | {m['p99_us']:.0f} "
              f"| {m['p999_us']:.0f} | | {m['cpu_us_per_req']:.2f} | | | | |")
    if len(med) == 2:
        ratio = med["switchyard"]["rps"] / med["baseline"]["rps"]
        pairs = []
        for run in sorted({f["run"] for f in wrk}):
            b = [num(f["rps"]) for f in wrk if f["run"] == run and f["server"] == "baseline"]
            s = [num(f["rps"]) for f in wrk if f["run"] == run and f["server"] == "switchyard"]
            if b and s:
                pairs.append(f"{s[0] / b[0]:.2f}")
        print()
        print(f"{label} throughput ratio switchyard/baseline: **{ratio:.2f}** (per run: {', '.join(pairs)}); "
              f"goal ≥ {target}: {goal(ratio >= target)}")
        cost = med["baseline"]["cpu_us_per_req"] / med["switchyard"]["cpu_us_per_req"]
        print()
        print(f"Server CPU time per request: switchyard {med['switchyard']['cpu_us_per_req']:.2f} µs, "
              f"baseline {med['baseline']['cpu_us_per_req']:.2f} µs; ratio baseline/switchyard **{cost:.2f}** "
              "(the same comparison, less sensitive to other tenants taking the server's core)")
    return med


def main(path, note=""):
    rows = parse(path)
    wrk = [f for k, f in rows if k == "wrk"]
    first = [f for k, f in rows if k == "wrk_first_visit"]
    ofrep = [f for k, f in rows if k == "wrk_ofrep"]
    forward_auth = [f for k, f in rows if k == "wrk_forward_auth"]
    fixed = [f for k, f in rows if k == "fixed_rate"]
    stalls = [f for k, f in rows if k == "stalls"]
    instructions = [f for k, f in rows if k == "instructions"]
    print()
    print("## Results" + (f" ({note})" if note else ""))
    print()
    throughput(wrk, "Throughput (wrk, closed loop)", "Returning visitors:", 0.85)
    if first:
        print()
        throughput(first, "First visits (wrk: no valid sticky cookie, every answer mints and signs one; "
                   "distinct client addresses)", "First visits:", 0.9)
    if ofrep:
        print()
        throughput(ofrep, "OpenFeature single-flag evaluations (wrk: the returning visitors' bodies as OFREP "
                   "contexts, POST /ofrep/v1/evaluate/flags/{key})", "OFREP single flag:", 0.85)
    if forward_auth:
        print()
        throughput(forward_auth, "Forward-auth (wrk: the returning visitors' inputs as the headers a proxy "
                   "forwards, GET /v1/forward-auth/{rollout})", "Forward-auth:", 0.85)
    if instructions:
        print()
        print(f"### Instructions per request (valgrind --tool=callgrind, {instructions[0]['requests']} "
              "requests per workload, one at a time on one connection, after a warm-up)")
        print()
        print("| workload | switchyard | baseline | ratio baseline/switchyard |")
        print("|---|---:|---:|---:|")
        for workload in ("returning", "first_visit", "forward_auth"):
            per = {f["server"]: num(f["per_request"]) for f in instructions if f["workload"] == workload}
            if "switchyard" in per and "baseline" in per:
                print(f"| {workload.replace('_', ' ').replace('forward auth', 'forward-auth')} | {per['switchyard']:,.0f} | {per['baseline']:,.0f} "
                      f"| **{per['baseline'] / per['switchyard']:.2f}** |")
    if fixed:
        print()
        rate = fixed[0]["rate"]
        print(f"### Latency under load (examples/fixed_rate, open loop at {num(rate):,.0f} req/s = "
              "half of Switchyard's median maximum; latency from the scheduled send time)")
        print()
        print("| server | run | requests | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs | sent late | service p99 µs "
              "| generator lag p99 µs | non-2xx/errors | server CPU % | steal % |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for f in fixed:
            print(f"| {f['server']} | {f.get('run', 1)} | {f['requests']} | {f['p50_us']} | {f['p90_us']} | {f['p99_us']} "
                  f"| {f['p999_us']} | {f['max_us']} | {f['late_sends']} | {f['service_p99_us']} "
                  f"| {f.get('send_lag_p99_us', '')} | {f['non_2xx']}/{f['errors']} | {f.get('server_cpu', '')} "
                  f"| {f.get('steal', '')} |")
        p99 = {}
        for server in ("baseline", "switchyard"):
            runs = [num(f["p99_us"]) for f in fixed if f["server"] == server]
            if runs:
                p99[server] = statistics.median(runs)
                print(f"| **{server}** | median | | | | **{p99[server]:.0f}** | | | | | | | | |")
        if "switchyard" in p99:
            extra = f" (baseline {p99['baseline']:.0f} µs in the same run)" if "baseline" in p99 else ""
            print()
            print(f"Switchyard p99 at half its maximum: **{p99['switchyard']:.0f} µs**{extra}; "
                  f"goal ≤ 1 ms: {goal(p99['switchyard'] <= 1000)}")
            service = {s: statistics.median(num(f["service_p99_us"]) for f in fixed if f["server"] == s)
                       for s in p99}
            extra = f" (baseline {service['baseline']:.0f} µs)" if "baseline" in service else ""
            print()
            print(f"Counted from the actual send instead (what `oha --qps` reports without "
                  f"`--latency-correction`; stalls of the generator and the queue behind a slow "
                  f"answer are not charged): Switchyard p99 **{service['switchyard']:.0f} µs**{extra}")
    if stalls:
        print()
        print(f"### Machine stalls (examples/stall_meter: a thread that never waits, "
              f"{num(stalls[0]['seconds']):.0f} s, servers idle; alone = the other core idle, "
              "all-busy = one meter on every core at once)")
        print()
        print("| condition | core | role | stalls > 100 µs | > 500 µs | > 1 ms | > 2 ms | > 5 ms | longest µs | time lost % | in stalls > 1 ms % |")
        print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for f in stalls:
            print(f"| {f['condition']} | {f['core']} | {f['role']} | {f['over_100us']} | {f['over_500us']} "
                  f"| {f['over_1000us']} | {f['over_2000us']} | {f['over_5000us']} | {f['longest_us']} "
                  f"| {f['lost_pct']} | {f['lost_over_1ms_pct']} |")
        print()
        print("A request that arrives while its server's core is stalled waits for the stall, and "
              "the ones queued behind it wait longer: with stalls over 1 ms at this rate, a "
              "p99 ≤ 1 ms needs them to touch fewer than 1 % of the requests, for any server.")
    print()
    print("### Memory (VmRSS)")
    print()
    print("| what | VmRSS | peak (VmHWM) | note |")
    print("|---|---:|---:|---|")
    for kind, f in rows:
        if kind == "idle_rss_kb":
            print(f"| baseline_server, idle | {mb(f['baseline'])} | | |")
            print(f"| switchyard, idle, bench rollout + default | {mb(f['switchyard_bench_rollout'])} | | |")
        elif kind == "after_load_rss_kb":
            print(f"| baseline_server, after the load runs | {mb(f['baseline'])} | | |")
            print(f"| switchyard, after the load runs | {mb(f['switchyard'])} | {mb(f['switchyard_hwm'])} | |")
        elif kind == "rss_kb" and "fresh_default_rollout" in f:
            print(f"| switchyard, fresh (default rollout only) | {mb(f['fresh_default_rollout'])} | | |")
        elif kind == "rss_kb" and "enrollments" in f:
            n = int(num(f["enrollments"]))
            limit = 120 * 1024 if n >= 1_000_000 else None
            g = f"goal ≤ 120 MB: {goal(num(f['idle']) <= limit)}" if limit else "(goal is for 1,000,000)"
            print(f"| switchyard, idle, {n:,} enrollments (loaded: {f['loaded']}) + {f['rollouts']} rollouts "
                  f"| {mb(f['idle'])} | {mb(f['hwm'])} | startup {f['startup_s']} s; {g} |")
        elif kind == "rss_kb" and "rollouts" in f:
            n = int(num(f["rollouts"]))
            g = f"goal ≤ 30 MB: {goal(num(f['idle']) <= 30 * 1024)}" if n >= 100 else "(goal is for 100)"
            print(f"| switchyard, idle, {n} rollouts ({n - 1} created through the API + the default) | {mb(f['idle'])} "
                  f"| {mb(f['hwm'])} | {g} |")
        elif kind == "store_file_bytes":
            print(f"| (store file with {int(num(f['enrollments'])):,} enrollments) | {num(f['bytes']) / 1e6:.1f} MB on disk | | |")
    print()
    for kind, f in rows:
        if kind == "meta" or kind.startswith("sample_") or kind.startswith("loadavg"):
            print("- " + " ".join(f"{k}={v}" for k, v in f.items()) if kind == "meta"
                  else f"- {kind} " + " ".join(f"{k}={v}" for k, v in f.items()))


if __name__ == "__main__":
    main(*sys.argv[1:])
