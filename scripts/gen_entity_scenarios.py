#!/usr/bin/env python3
"""Writes tests/scenarios/overdue_orders_page.ndjson: per-entity SLA timers.

fulfilment opens an order every 10 s from 10:00:00Z to 10:59:50Z, each promised
within 10 minutes (`deadline`), and closes it 3 minutes later, except the
orders opened 10:20:00..10:39:50, which close 15 minutes later (5 minutes past
their promise). Mixed in: a duplicate open, a close that arrives 5 s before its
own open (within the lateness), and a close for an order nobody opened. Lines
are written in arrival order (each close where its time falls).
"""
import json
import os

T0 = 1795168800000  # 2026-11-20T10:00:00Z
M = 60_000
events = []
for i in range(360):
    t = i * 10_000
    oid = f"order-{i}"
    late = 20 * M <= t < 40 * M
    events.append((t, {"ts": T0 + t, "service": "fulfilment", "kind": "custom", "entity": oid,
                       "phase": "open", "deadline": T0 + t + 10 * M,
                       "labels": {"entity_type": "order"}}))
    events.append((t + (15 if late else 3) * M,
                   {"ts": T0 + t + (15 if late else 3) * M, "service": "fulfilment",
                    "kind": "custom", "entity": oid, "phase": "close",
                    "labels": {"entity_type": "order"}}))
L = {"entity_type": "order"}
# order-5's open again: a duplicate.
events.append((50_001, dict(events[10][1])))
# order-400: its close (10:08:00) arrives just before its open (10:07:59).
events.append((8 * M - 1001, {"ts": T0 + 8 * M, "service": "fulfilment", "entity": "order-400",
                              "phase": "close", "labels": L}))
events.append((8 * M - 1000, {"ts": T0 + 8 * M - 1000, "service": "fulfilment", "kind": "custom",
                              "entity": "order-400", "phase": "open", "deadline": T0 + 18 * M,
                              "labels": L}))
# A close for an order nobody opened.
events.append((30 * M + 1, {"ts": T0 + 30 * M, "service": "fulfilment", "entity": "order-x",
                            "phase": "close", "labels": L}))
events.sort(key=lambda e: e[0])
lines = [json.dumps(e, separators=(",", ":")) for _, e in events]
with open(os.path.join(os.path.dirname(__file__), "..", "tests", "scenarios",
                       "overdue_orders_page.ndjson"), "w") as f:
    f.write("\n".join(lines) + "\n")
