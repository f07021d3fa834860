#!/usr/bin/env python3
"""Incident-by-incident lead of one backtest against another.

Usage: scripts/paired-lead.py A.json B.json   (`forewarn backtest --format json`)

Median leads over different sets of caught incidents mislead: this pairs the
incidents both configs caught and prints how often A warned earlier, the
median and mean of A's lead minus B's, what only one of them caught, and
both configs' false pages (BENCHMARKS.md, stop 38).
"""
import json
import statistics
import sys


def caught(report):
    return {i["id"]: i["lead_seconds"] for i in report["incidents"]
            if i.get("lead_seconds") is not None}


def main(a_path, b_path):
    a, b = (json.load(open(p)) for p in (a_path, b_path))
    la, lb = caught(a), caught(b)
    both = sorted(set(la) & set(lb))
    diff = [(la[k] - lb[k]) / 60 for k in both]
    print(f"incidents: {len(a['incidents'])}; caught by both: {len(both)}")
    if diff:
        print(f"A earlier / later: {sum(d > 0 for d in diff)} / {sum(d < 0 for d in diff)}; "
              f"A minus B, median {statistics.median(diff):+.1f} min, mean {statistics.mean(diff):+.1f} min")
    print(f"only A / only B: {len(set(la) - set(lb))} / {len(set(lb) - set(la))}")
    print(f"false pages A / B: {a['overall']['false_pages']} / {b['overall']['false_pages']}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
