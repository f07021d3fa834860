#!/usr/bin/env python3
"""Writes the SLO golden scenarios (tests/scenarios/slo_*.ndjson): one service,
`checkout`, sending requests at a steady rate with errors at exact positions, so
each window's error ratio is known by arithmetic (see each scenario's .toml).

- slo_fast_burn_pages_within_minutes: 1 request / 2 s; 1 h at 0.05% errors, then
  20% errors (a 200x burn of a 99.9% objective) for 15 minutes.
- slo_slow_burn_pages_on_the_6h_pair: 1 request / 4 s; 10% errors (10x a 99%
  objective) for 5 h.
- slo_blip_does_not_page: 1 request / 2 s for 2 h, all failing for 40 s at 1 h.
"""
import json
import os

T0 = 1795168800000  # 2026-11-20T10:00:00Z
DIR = os.path.join(os.path.dirname(__file__), "..", "tests", "scenarios")


def write(name, every_ms, until_ms, error):
    with open(os.path.join(DIR, name + ".ndjson"), "w") as f:
        i, t = 0, 0
        while t < until_ms:
            outcome = "error" if error(t, i) else "ok"
            f.write(json.dumps({"ts": T0 + t, "service": "checkout", "kind": "request",
                                "outcome": outcome}, separators=(",", ":")) + "\n")
            i += 1
            t += every_ms


H, M = 3_600_000, 60_000
write("slo_fast_burn_pages_within_minutes", 2000, H + 15 * M,
      lambda t, i: i % 5 == 0 if t >= H else i % 2000 == 1999)
write("slo_slow_burn_pages_on_the_6h_pair", 4000, 5 * H, lambda t, i: i % 10 == 9)
write("slo_blip_does_not_page", 2000, 2 * H, lambda t, i: H <= t < H + 40_000)
