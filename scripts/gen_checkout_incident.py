#!/usr/bin/env python3
"""Writes tests/scenarios/checkout_incident.ndjson: a deterministic scenario whose
expected alert transitions are derived by hand in checkout_incident.expected.ndjson.

checkout: one request per second for 20 minutes from 10:00:00Z. Baseline errors at
seconds i % 50 == 25 (1-2 per minute); during the incident, seconds 480..719, every
request with i % 4 == 0 also fails. search: one healthy request per second until it
goes silent at second 900. Mixed in: two malformed lines, one late event and one event
from the far future, which must be rejected or counted without affecting the alerts.
"""
import json, sys

T0 = 1795168800000  # 2026-11-20T10:00:00Z
lines = []
for i in range(1200):
    err = i % 50 == 25 or (480 <= i < 720 and i % 4 == 0)
    lines.append({"ts": T0 + i * 1000, "service": "checkout", "kind": "request",
                  "outcome": "error" if err else "ok", "category": "system" if err else None,
                  "latency_ms": 120 + (i * 7) % 50, "sla_ms": 800, "labels": {"region": "eu-west"}})
    if i < 900:
        lines.append({"ts": T0 + i * 1000 + 500, "service": "search", "kind": "request",
                      "outcome": "ok", "latency_ms": 40 + i % 9, "sla_ms": 300})
    if i == 200:
        lines.append({"ts": T0 + 100 * 1000, "service": "checkout", "kind": "request", "outcome": "error"})
out = []
for n, ev in enumerate(lines):
    ev = {k: v for k, v in ev.items() if v is not None}
    out.append(json.dumps(ev, separators=(",", ":")))
    if n == 300:
        out.append('{"ts":"not a time","service":"checkout","kind":"request"}')
    if n == 301:
        out.append('this is not json')
    if n == 302:
        out.append('{"ts":"2030-01-01T00:00:00Z","service":"checkout","kind":"request","outcome":"error"}')
sys.stdout.write("\n".join(out) + "\n")
