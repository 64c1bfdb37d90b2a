#!/usr/bin/env python3
"""Tables from a bench/compare run: one per workload, servers in the order they ran.

    python3 bench/compare/summarize.py RESULTS.jsonl

Each figure is the median over a server's runs of that workload, with the min-max
range. Runs flagged noisy (other programs took more than NOISY cores) are left out of
the median when at least two quiet runs remain; otherwise all runs count and the row
is marked with *. Ratios are medians over medians: to the raw TCP echo (the same bytes,
no protocol: the ceiling) and to the best peer (the best median among the servers that
are neither raw-tcp nor wsqueue).
"""

import json
import sys

# workload -> (title, metric key, unit, higher is better)
WORKLOADS = {
    "p1": ("100 conns x 32 B, 1 in flight", "msgs_per_sec", "msg/s", True),
    "p16": ("100 conns x 32 B, 16 in flight", "msgs_per_sec", "msg/s", True),
    "c1000": ("1,000 conns x 32 B, 4 in flight", "msgs_per_sec", "msg/s", True),
    "m64k": ("10 conns x 64 KiB, 1 in flight", "mbytes_per_sec", "MB/s", True),
    "m1m": ("1 conn x 1 MiB, 1 in flight", "mbytes_per_sec", "MB/s", True),
    "hold": ("idle connections with pings", "rss_per_conn_bytes", "RSS B/conn", False),
    "latency": ("100 conns x 32 B at half of each server's peak rate", "lat_p99_us", "p99 us", False),
}


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    if n == 0:
        return None
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def fmt(v, unit=""):
    if v is None:
        return "-"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def is_peer(label):
    return label != "raw-tcp" and not label.startswith("wsqueue")


def us_per_msg(r):
    if r.get("server_cpu") is None or not r["msgs_per_sec"]:
        return None
    return r["server_cpu"] / r["msgs_per_sec"] * 1e6


def main(path):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    failed = [r for r in rows if not r["ok"]]
    for workload, (title, key, unit, higher) in WORKLOADS.items():
        runs = [r for r in rows if r.get("workload") == workload]
        if not runs:
            continue
        labels = list(dict.fromkeys(r["label"] for r in runs))
        stats = {}
        for label in labels:
            mine = [r for r in runs if r["label"] == label and r["ok"] and r.get(key) is not None]
            quiet = [r for r in mine if not r["noisy"]]
            use = quiet if len(quiet) >= 2 or len(quiet) == len(mine) else mine
            vals = [float(r[key]) for r in use]
            stats[label] = {
                "n": f"{len(quiet)}/{len([r for r in runs if r['label'] == label])}",
                "starred": use is mine and len(quiet) < len(mine),
                "median": median(vals),
                "min": min(vals) if vals else None,
                "max": max(vals) if vals else None,
                "rate": median([r["msgs_per_sec"] for r in use]),
                "p50": median([r["lat_p50_us"] for r in use]),
                "p99": median([r["lat_p99_us"] for r in use]),
                "cpu": median([r["server_cpu"] for r in use if r.get("server_cpu") is not None]),
                "us_msg": median([c for c in map(us_per_msg, use) if c is not None]),
                "loadgen": median([r["loadgen_cpu"] for r in use]),
                "others": median([r["others_cpu"] for r in use if r.get("others_cpu") is not None]),
                "opened": median([r["opened"] for r in use]),
                "pings": median([r["server_pings_answered"] + r["pongs_received"] for r in use]),
                "threads": median([r.get("server_os_threads", 0) for r in use]),
            }
        raw = stats.get("raw-tcp", {}).get("median")
        peers = [s["median"] for label, s in stats.items() if is_peer(label) and s["median"] is not None]
        best = (max(peers) if higher else min(peers)) if peers else None
        conns = runs[0]["conns"]
        print(f"\n### {title}" + (f" ({conns:,} connections)" if workload == "hold" else ""))
        print()
        if workload == "hold":
            head = ["server", "quiet runs", f"{unit} (median)", "min-max", "vs best peer",
                    "server CPU (cores)", "pings+pongs answered", "others (cores)"]
        elif workload == "latency":
            head = ["server", "quiet runs", "rate (msg/s)", "p50 us", f"{unit} (median)", "min-max",
                    "vs raw TCP", "vs best peer", "server CPU (cores)", "others (cores)"]
        else:
            head = ["server", "quiet runs", f"{unit} (median)", "min-max", "vs raw TCP", "vs best peer",
                    "p50 / p99 us", "server us/msg", "loadgen CPU", "others (cores)"]
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for label, s in stats.items():
            m = s["median"]
            ratio = lambda ref: "-" if m is None or not ref else f"{m / ref:.2f}x"
            name = label + (" *" if s["starred"] else "")
            span = f"{fmt(s['min'])}-{fmt(s['max'])}"
            if workload == "hold":
                cells = [name, s["n"], fmt(m), span, ratio(best), fmt(s["cpu"]), fmt(s["pings"]), fmt(s["others"])]
            elif workload == "latency":
                cells = [name, s["n"], fmt(s["rate"]), fmt(s["p50"]), fmt(m), span, ratio(raw), ratio(best),
                         fmt(s["cpu"]), fmt(s["others"])]
            else:
                cells = [name, s["n"], fmt(m), span, ratio(raw), ratio(best), f"{fmt(s['p50'])} / {fmt(s['p99'])}",
                         fmt(s["us_msg"]), fmt(s["loadgen"]), fmt(s["others"])]
            print("| " + " | ".join(cells) + " |")
        if not higher:
            print("\n(lower is better: ratios above 1 are worse)")
    noisy = [r for r in rows if r["noisy"]]
    print(f"\n{len(rows)} runs, {len(noisy)} flagged noisy, {len(failed)} with errors.")
    for r in failed:
        print(f"  FAILED: {r['workload']} round {r['round']} {r['label']}: {r['error_count']} errors: "
              + "; ".join(r["errors"][:3]))


if __name__ == "__main__":
    main(sys.argv[1])
