"""The label contract every inferwatch alert carries, which Alertmanager routes on and the webhook reads.

`source` marks our alerts, `severity` picks the receiver, `tier` says where in the model -> pod -> GPU chain
an alert sits, and SLO burn alerts add `slo` and `burn_tier`. Routing, inhibition and the dashboard's alert
annotations match on these names and values only, never on individual alert names.
"""
from __future__ import annotations

SOURCE_LABEL, SOURCE = "source", "inferwatch"
SEVERITY = "severity"
SEVERITIES = ("critical", "warning", "info")  # critical pages, warning opens a ticket, info is kept quiet
TIER = "tier"
TIERS = ("model", "pod", "gpu")
SLO = "slo"
BURN_TIER = "burn_tier"
BURN_TIERS = ("page-outage", "page-fast", "page-slow", "ticket-fast", "ticket-slow")  # fastest first


def contract(severity: str, tier: str) -> dict[str, str]:
    """The labels of one alert rule (identity labels come from its expression)."""
    return {SOURCE_LABEL: SOURCE, SEVERITY: severity, TIER: tier}
