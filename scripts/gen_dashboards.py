#!/usr/bin/env python3
"""Writes forewarn's Grafana dashboards (deploy/grafana/dashboards/*.json).

The JSON files are committed; edit the panels here and re-run
`python3 scripts/gen_dashboards.py`. tests/dashboards.rs queries every
expression through a real Prometheus scraping forewarn, so a broken panel fails CI.
"""
import json
import os

DS = {"type": "prometheus", "uid": "prometheus"}
OUT = os.path.join(os.path.dirname(__file__), "..", "deploy", "grafana", "dashboards")


def panel(pid, title, kind, exprs, x, y, w=12, h=8, unit=None, legend=None, extra=None):
    p = {
        "id": pid,
        "type": kind,
        "title": title,
        "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": [
            {"refId": chr(65 + i), "expr": e, "legendFormat": (legend[i] if legend else ""),
             "datasource": DS}
            for i, e in enumerate(exprs)
        ],
        "fieldConfig": {"defaults": {}, "overrides": []},
        "options": {},
    }
    if unit:
        p["fieldConfig"]["defaults"]["unit"] = unit
    if extra:
        p.update(extra)
    return p


def dashboard(uid, title, panels, variables=(), refresh="10s"):
    return {
        "uid": uid,
        "title": title,
        "tags": ["forewarn"],
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": refresh,
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": list(variables)},
        "panels": panels,
    }


def service_variable():
    return {
        "name": "service",
        "label": "service",
        "type": "query",
        "datasource": DS,
        "query": {"query": "label_values(forewarn_risk_score, service)", "refId": "service"},
        "definition": "label_values(forewarn_risk_score, service)",
        "refresh": 2,
        "includeAll": False,
        "multi": False,
        "sort": 1,
    }


RISK_STEPS = {"mode": "absolute", "steps": [
    {"color": "green", "value": None}, {"color": "yellow", "value": 0.25},
    {"color": "orange", "value": 0.5}, {"color": "red", "value": 0.7}]}

BUDGET_STEPS = {"mode": "absolute", "steps": [
    {"color": "red", "value": None}, {"color": "orange", "value": 0.25},
    {"color": "green", "value": 0.5}]}
# The Workbook's burn-rate factors, drawn as lines on the burn-rate panel.
BURN_STEPS = {"mode": "absolute", "steps": [
    {"color": "green", "value": None}, {"color": "blue", "value": 1},
    {"color": "yellow", "value": 3}, {"color": "orange", "value": 6},
    {"color": "red", "value": 14.4}]}

overview = dashboard("forewarn-overview", "forewarn: service risk overview", [
    panel(1, "Risk score by service (0-1)", "bargauge",
          ["sort_desc(forewarn_risk_score)"], 0, 0, w=12, h=10, unit="percentunit",
          legend=["{{service}}"],
          extra={"fieldConfig": {"defaults": {"unit": "percentunit", "min": 0, "max": 1,
                                              "thresholds": RISK_STEPS}, "overrides": []},
                 "options": {"orientation": "horizontal", "displayMode": "gradient"}}),
    panel(2, "Firing alerts", "stat",
          ['sum(forewarn_alerts{alertstate="firing"}) or vector(0)'], 12, 0, w=6, h=5),
    panel(3, "Pending alerts", "stat",
          ['sum(forewarn_alerts{alertstate="pending"}) or vector(0)'], 18, 0, w=6, h=5),
    panel(4, "Alerts by rule and severity", "table",
          ['sum by (alertname, severity, alertstate) (forewarn_alerts)'], 12, 5, w=12, h=5,
          extra={"targets": [{"refId": "A", "expr": "sum by (alertname, severity, alertstate) (forewarn_alerts)",
                              "format": "table", "instant": True, "datasource": DS}]}),
    panel(5, "Risk over time", "timeseries",
          ["forewarn_risk_score"], 0, 10, w=12, h=8, unit="percentunit", legend=["{{service}}"]),
    panel(6, "Top failing categories (firing transitions, 1h)", "bargauge",
          ['topk(5, sum by (alertname) (increase(forewarn_transitions_total{status="firing"}[1h])))'],
          12, 10, w=12, h=8, legend=["{{alertname}}"]),
    panel(7, "Transitions per minute by status", "timeseries",
          ["sum by (status) (rate(forewarn_transitions_total[5m])) * 60"], 0, 18, w=24, h=7,
          legend=["{{status}}"]),
])

drilldown = dashboard("forewarn-service", "forewarn: service drill-down", [
    panel(1, "Risk score", "gauge", ['forewarn_risk_score{service="$service"}'], 0, 0, w=6, h=6,
          extra={"fieldConfig": {"defaults": {"unit": "percentunit", "min": 0, "max": 1,
                                              "thresholds": RISK_STEPS}, "overrides": []}}),
    panel(2, "Alerts on this service", "table",
          ['sum by (alertname, severity, alertstate) (forewarn_alerts{service="$service"})'],
          6, 0, w=18, h=6,
          extra={"targets": [{"refId": "A", "expr": 'sum by (alertname, severity, alertstate) (forewarn_alerts{service="$service"})',
                              "format": "table", "instant": True, "datasource": DS}]}),
    panel(3, "Signals with their rules (latest window value)", "timeseries",
          # No legend format: the default shows every label, including the
          # signal's group_by labels (they differ from rule to rule).
          ['forewarn_signal_value{service="$service"}'], 0, 6, w=24, h=9),
    panel(4, "Signal values now", "table",
          ['forewarn_signal_value{service="$service"}'], 0, 15, w=24, h=7,
          extra={"targets": [{"refId": "A", "expr": 'forewarn_signal_value{service="$service"}',
                              "format": "table", "instant": True, "datasource": DS}]}),
    panel(5, "SLO error budget remaining (30d)", "bargauge",
          ['forewarn_slo_error_budget_remaining_ratio{service="$service"}'], 0, 22, w=8, h=8,
          unit="percentunit", legend=["{{slo}}"],
          extra={"fieldConfig": {"defaults": {"unit": "percentunit", "min": 0, "max": 1,
                                              "thresholds": BUDGET_STEPS}, "overrides": []},
                 "options": {"orientation": "horizontal", "displayMode": "gradient"}}),
    panel(6, "SLO burn rate by window (page at 14.4x over 1h and 6x over 6h, ticket at 3x over 1d and 1x over 3d)",
          "timeseries",
          ['forewarn_slo_burn_rate{service="$service", window=~"5m|1h|6h|1d|3d"}'],
          8, 22, w=16, h=8, legend=["{{slo}} {{window}}"],
          extra={"fieldConfig": {"defaults": {"unit": "x", "min": 0,
                                              "custom": {"thresholdsStyle": {"mode": "line"}},
                                              "thresholds": BURN_STEPS}, "overrides": []}}),
    # Expected against actual: each anomaly rule's signal inside the band it
    # expects at this hour (the band is filled between its two edges).
    panel(7, "Expected vs actual (anomaly rules)", "timeseries",
          ['forewarn_signal_value{service="$service"} and on (rule, service) forewarn_anomaly_score{service="$service"}',
           'forewarn_anomaly_expected{service="$service", bound="lower"}',
           'forewarn_anomaly_expected{service="$service", bound="upper"}'],
          0, 30, w=16, h=9, legend=["{{rule}} actual", "{{rule}} expected low", "{{rule}} expected high"],
          # The band's edges dashed; the unit is the signal's own (a rate, ms …).
          extra={"fieldConfig": {"defaults": {"unit": "short"}, "overrides": [
              {"matcher": {"id": "byRegexp", "options": ".* expected (low|high)"},
               "properties": [{"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}}]}]}}),
    panel(8, "Anomaly score (pages at 1 - sensitivity, 0.5 by default)", "timeseries",
          ['forewarn_anomaly_score{service="$service"}'], 16, 30, w=8, h=9,
          unit="percentunit", legend=["{{rule}}"],
          extra={"fieldConfig": {"defaults": {"unit": "percentunit", "min": 0, "max": 1}, "overrides": []}}),
], variables=[service_variable()])

pipeline = dashboard("forewarn-pipeline", "forewarn: pipeline health", [
    panel(1, "Events consumed per second, by result", "timeseries",
          ["sum by (result) (rate(forewarn_events_total[$__rate_interval]))"], 0, 0, unit="ops",
          legend=["{{result}}"]),
    panel(2, "Consumer lag (messages)", "timeseries",
          ["sum by (topic, partition) (forewarn_consumer_lag)"], 12, 0, legend=["{{topic}}/{{partition}}"]),
    panel(3, "Watermark delay", "timeseries",
          ["max by (topic, partition) (forewarn_watermark_delay_seconds)"], 0, 8, unit="s",
          legend=["{{topic}}/{{partition}}"]),
    panel(4, "Dead letters per second, by reason", "timeseries",
          ["sum by (reason) (rate(forewarn_dead_letters_total[$__rate_interval]))"], 12, 8, unit="ops",
          legend=["{{reason}}"]),
    panel(5, "Detection latency (consume → alert acknowledged)", "timeseries",
          ["histogram_quantile(0.5, sum by (le) (rate(forewarn_detection_latency_seconds_bucket[$__rate_interval])))",
           "histogram_quantile(0.99, sum by (le) (rate(forewarn_detection_latency_seconds_bucket[$__rate_interval])))"],
          0, 16, unit="s", legend=["p50", "p99"]),
    panel(6, "Event processing time (sampled)", "timeseries",
          ["histogram_quantile(0.99, sum by (le) (rate(forewarn_event_processing_seconds_bucket[$__rate_interval])))"],
          12, 16, unit="s", legend=["p99"]),
    panel(7, "Outputs: delivered, errors, dropped per second", "timeseries",
          ["sum by (output) (rate(forewarn_output_delivered_total[$__rate_interval]))",
           "sum by (output) (rate(forewarn_output_errors_total[$__rate_interval]))",
           "sum by (output) (rate(forewarn_output_dropped_total[$__rate_interval]))"],
          0, 24, unit="ops", legend=["delivered {{output}}", "errors {{output}}", "dropped {{output}}"]),
    panel(8, "Assigned partitions, groups refused and reclaimed, commit failures", "timeseries",
          ["sum(forewarn_assigned_partitions)", "sum(rate(forewarn_groups_refused_total[$__rate_interval]))",
           "sum(rate(forewarn_groups_reclaimed_total[$__rate_interval]))",
           "sum(rate(forewarn_commit_failures_total[$__rate_interval]))"],
          12, 24, legend=["partitions", "events of refused groups/s", "idle groups reclaimed/s",
                          "commit failures/s"]),
    panel(9, "Alertmanager notifications: accepted and failed per second, queued", "timeseries",
          ["sum by (alertmanager) (rate(forewarn_notifications_sent_total[$__rate_interval]))",
           "sum by (alertmanager) (rate(forewarn_notifications_failed_total[$__rate_interval]))",
           "sum by (alertmanager) (forewarn_notifications_queued)"],
          0, 32, w=24, legend=["accepted {{alertmanager}}", "failed {{alertmanager}}",
                               "queued {{alertmanager}}"]),
])

for name, d in [("service-risk-overview", overview), ("service-drilldown", drilldown),
                ("pipeline-health", pipeline)]:
    with open(os.path.join(OUT, name + ".json"), "w") as f:
        json.dump(d, f, indent=2)
        f.write("\n")
