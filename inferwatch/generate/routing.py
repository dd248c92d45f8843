"""Alertmanager routing for inferwatch alerts: a route subtree, placeholder receivers, inhibit rules.

Routing relies only on the alert label contract (core/labels.py: `source`, `severity`, `tier`, `burn_tier`,
`slo` and the identifying labels from `cfg.labels`), never on individual alert names, except where a failure
mode silences others: those inhibit rules are derived from the failure-mode catalog (core/failures.py). The fragment is merged into an existing
alertmanager.yml (docs/routing.md); `sample_config()` shows the result for a minimal existing config.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..core import failures
from ..core.config import Config
from ..core import labels
from ..core.labels import BURN_TIER, BURN_TIERS, OURS, SEVERITIES, SEVERITY, TIER, matcher
from ..core.promql import regex_escape
from ..core.rules import HEADER, dump_yaml
from .receiver import diagnose_url



ROUTES_FILE = "alertmanager/inferwatch-routes.yaml"
SAMPLE_FILE = "alertmanager/alertmanager-sample.yaml"



def one_of(name: str, values: tuple[str, ...], negate: bool = False) -> str:
    """An equality matcher for one value, a regex of escaped alternatives for several."""
    if len(values) == 1:
        return matcher(name, "!=" if negate else "=", values[0])
    return matcher(name, "!~" if negate else "=~", "|".join(regex_escape(v) for v in values))


@dataclass(frozen=True)
class Commented:
    """A list entry (receiver, inhibit rule) with the comment rendered above it."""
    comment: str
    body: dict


def group_by(cfg: Config) -> list[str]:
    return labels.group_by(cfg.labels)


def route(cfg: Config) -> dict:
    """The subtree that takes every inferwatch alert; it goes first in the root route's `routes:`."""
    r = cfg.routing
    return {
        "receiver": r.ticket_receiver,
        "matchers": [OURS],
        "group_by": group_by(cfg),
        "group_wait": r.group_wait,
        "group_interval": r.group_interval,
        "repeat_interval": r.repeat_interval,
        "routes": [
            {"receiver": r.diagnose_receiver, "matchers": [OURS],
             "group_wait": r.diagnose_group_wait, "continue": True},
            {"receiver": r.pager_receiver, "matchers": [matcher(SEVERITY, "=", "critical")]},
            {"receiver": r.ticket_receiver, "matchers": [matcher(SEVERITY, "=", "warning")]},
            {"receiver": r.null_receiver, "matchers": [matcher(SEVERITY, "=", "info")]},
            # The diagnose route matched already, so the parent would not catch an unknown severity: this does.
            {"receiver": r.ticket_receiver, "matchers": [matcher(SEVERITY, "!~", "|".join(SEVERITIES))]},
        ],
    }


def receivers(cfg: Config) -> list[Commented]:
    r = cfg.routing
    return [
        Commented("Diagnose webhook (`inferwatch serve`): sees every inferwatch alert and never pages.",
                  {"name": r.diagnose_receiver,
                   "webhook_configs": [{"url": diagnose_url(cfg), "send_resolved": True, "max_alerts": 0}]}),
        Commented("Placeholder, fill in: severity=critical pages (pagerduty_configs, opsgenie_configs, ...).",
                  {"name": r.pager_receiver}),
        Commented("Placeholder, fill in: severity=warning opens a ticket or a chat message (slack_configs, ...).",
                  {"name": r.ticket_receiver}),
        Commented("Deliberately empty: severity=info is kept for dashboards and diagnosis, not sent anywhere.",
                  {"name": r.null_receiver}),
    ]


def _rule(reason: str, source: list[str], target: list[str], equal: tuple[str, ...]) -> Commented:
    return Commented(reason, {"source_matchers": [OURS, *source], "target_matchers": [OURS, *target],
                              "equal": list(equal)})


def inhibit_rules(cfg: Config) -> list[Commented]:
    """One page per incident. Every rule is limited to inferwatch alerts on both sides."""
    model, pod = cfg.labels.model_keys(), cfg.labels.join_keys()
    rules = []
    for i, fast in enumerate(BURN_TIERS[:-1]):
        slower = BURN_TIERS[i + 1:]
        rules.append(_rule(
            f"A {fast} burn already reports this SLO of this model; the slower windows "
            f"({', '.join(slower)}) would only repeat it, later.",
            [matcher(BURN_TIER, "=", fast)], [matcher(BURN_TIER, "=~", "|".join(slower))],
            (*model, "slo")))
    rules.append(_rule(
        "A critical alert already pages for this model; its warnings and infos go into the same incident.",
        [matcher(SEVERITY, "=", "critical")], [matcher(SEVERITY, "=~", "warning|info")], model))
    rules.append(_rule(
        "A warning already opens a ticket for this model; its infos add nothing to route.",
        [matcher(SEVERITY, "=", "warning")], [matcher(SEVERITY, "=", "info")], model))
    for mode in failures.FAILURES:
        if (inh := mode.inhibits) is not None:
            rules.append(_rule(inh.reason, [one_of("alertname", inh.by)],
                               [matcher(TIER, "=", inh.tier), one_of("alertname", inh.spare, negate=True)], pod))
    return rules


# ---- rendering ------------------------------------------------------------------------------------

MERGE_HELP = """\
# Alertmanager fragment for inferwatch alerts. Merge it into your alertmanager.yml (docs/routing.md):
#   1. put `route` below as the FIRST entry of your root route's `routes:` list;
#   2. append `receivers` to yours and fill in the placeholders (pager, ticket);
#   3. append `inhibit_rules` to yours.
# Check the result with `amtool check-config alertmanager.yml`.
"""


def _commented_list(key: str, items: list[Commented | dict]) -> str:
    out = [f"{key}:\n"]
    for item in items:
        if isinstance(item, Commented):
            out.append("".join(f"# {line}\n" for line in item.comment.splitlines()))
            item = item.body
        out.append(dump_yaml([item]))
    return "".join(out)


def render(top: dict, recv: list[Commented | dict], inhibit: list[Commented | dict]) -> str:
    return dump_yaml(top) + _commented_list("receivers", recv) + _commented_list("inhibit_rules", inhibit)


def fragment(cfg: Config) -> str:
    return HEADER + MERGE_HELP + render({"route": route(cfg)}, receivers(cfg), inhibit_rules(cfg))


SAMPLE_BASE = {
    "global": {"resolve_timeout": "5m"},
    "route": {"receiver": "default", "group_by": ["namespace", "alertname"],
              "routes": [{"receiver": "platform-team", "matchers": [matcher("team", "=", "platform")]}]},
    "receivers": [{"name": "default"}, {"name": "platform-team"}],
}


def sample_config(cfg: Config) -> str:
    """A complete alertmanager.yml: a small existing config with the fragment merged in."""
    top = {"global": SAMPLE_BASE["global"],
           "route": {**SAMPLE_BASE["route"], "routes": [route(cfg), *SAMPLE_BASE["route"]["routes"]]}}
    return (HEADER + "# A minimal existing alertmanager.yml (receivers default, platform-team) with "
            f"{ROUTES_FILE.split('/')[-1]} merged in.\n"
            + render(top, [*SAMPLE_BASE["receivers"], *receivers(cfg)], inhibit_rules(cfg)))


def artifacts(cfg: Config) -> dict[str, str]:
    return {ROUTES_FILE: fragment(cfg), SAMPLE_FILE: sample_config(cfg)}
