"""Alertmanager routing, checked with the real amtool and a real Alertmanager.

Every generated alerting rule must have a routing case below (the meta-test fails otherwise): the case says
which receivers its alerts must reach, and `amtool config routes test --verify.receivers` proves they do.
"""
from __future__ import annotations

import dataclasses
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from inferwatch.sandbox.localprom import LocalAlertmanager
from inferwatch.generate import routing
from inferwatch.core.config import Config, ConfigError, parse_config
from inferwatch.generate.writer import rule_groups
from inferwatch.core.rules import AlertingRule

DEFAULT = Config()
ACK = parse_config("labels: {namespace: pod_namespace, pod: pod_name, role: rbg_role, cluster: cluster}\n"
                   "routing: {pager_receiver: oncall, ticket_receiver: llm-team-slack}\n")

# (alertname, severity) of every generated alerting rule -> receiver roles it must reach, in tree order.
PAGE, TICKET, NOWHERE = ("diagnose", "pager"), ("diagnose", "ticket"), ("diagnose", "null")
ROUTING_CASES: dict[tuple[str, str], tuple[str, ...]] = {
    ("LLMModelErrorBudgetBurn", "critical"): PAGE,
    ("LLMModelErrorBudgetBurn", "warning"): TICKET,
    ("LLMModelServingAbsent", "critical"): PAGE,
    ("LLMModelReplicasLost", "warning"): TICKET,
    ("LLMModelTrafficSurge", "warning"): TICKET,
    ("LLMModelRequestLengthShift", "info"): NOWHERE,
    ("LLMPodTargetDown", "warning"): TICKET,
    ("LLMPodRestarted", "warning"): TICKET,
    ("LLMPodQueueBacklog", "warning"): TICKET,
    ("LLMPodKVCacheSaturated", "warning"): TICKET,
    ("LLMPodPreemptionStorm", "warning"): TICKET,
    ("LLMPodPrefixCacheHitRatioCollapse", "info"): NOWHERE,
    ("LLMPodLoadImbalance", "info"): NOWHERE,
    ("LLMPodKVTransferFailing", "warning"): TICKET,
    ("LLMPodLoRASlotsExhausted", "warning"): TICKET,
    ("LLMPodSpecDecodeAcceptanceDrop", "info"): NOWHERE,
    ("LLMGPUXidError", "warning"): TICKET,
    ("LLMGPUEccOrRowRemapFailure", "warning"): TICKET,
    ("LLMGPUThrottled", "warning"): TICKET,
    ("LLMGPUFramebufferNearlyFull", "warning"): TICKET,
    ("LLMGPUComputeSaturated", "info"): NOWHERE,
    ("LLMGPUIdleWhileQueued", "warning"): TICKET,
}

BY_SEVERITY = {"critical": PAGE, "warning": TICKET, "info": NOWHERE}
IDENTITY = {"namespace": "llm", "workload": "chat", "backend": "vllm", "model": "Qwen/Qwen2.5-7B-Instruct",
            "role": "decode", "pod": "chat-1", "cluster": "prod-eu"}


def receiver_names(cfg: Config, roles: tuple[str, ...]) -> str:
    r = cfg.routing
    names = {"diagnose": r.diagnose_receiver, "pager": r.pager_receiver, "ticket": r.ticket_receiver,
             "null": r.null_receiver}
    return ",".join(names[role] for role in roles)


def identity_labels(cfg: Config, **overrides: str) -> dict[str, str]:
    """Identifying labels of one alert, under the label names `cfg` configures."""
    values = {**IDENTITY, **overrides}
    lb = cfg.labels
    names = {"namespace": lb.namespace, "workload": lb.workload, "backend": lb.backend, "model": lb.model,
             "role": lb.role, "pod": lb.pod, "cluster": lb.cluster}
    return {names[k]: v for k, v in values.items() if names[k]}


def sample_file(cfg: Config, tmp_path: Path) -> Path:
    path = tmp_path / "alertmanager.yml"
    path.write_text(routing.sample_config(cfg))
    return path


def routes_test(config: Path, labels: dict[str, str], expected: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["amtool", "config", "routes", "test", f"--config.file={config}", f"--verify.receivers={expected}",
         *(f"{k}={v}" for k, v in sorted(labels.items()))], capture_output=True, text=True)


def generated_alerts(cfg: Config) -> list[AlertingRule]:
    return [r for g in rule_groups(cfg) for r in g.rules if isinstance(r, AlertingRule)]


# ---- the generated files --------------------------------------------------------------------------

@pytest.mark.parametrize("cfg", [DEFAULT, ACK], ids=["default", "ack-labels-cluster"])
def test_merged_sample_passes_amtool_check_config(cfg, tmp_path):
    res = subprocess.run(["amtool", "check-config", str(sample_file(cfg, tmp_path))], capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "8 inhibit rules" in res.stdout


def test_fragment_groups_by_model_identity_and_sends_everything_to_diagnose_first():
    frag = yaml.safe_load(routing.fragment(ACK))
    route = frag["route"]
    assert route["group_by"] == ["cluster", "pod_namespace", "workload_name", "model_name", "alertname"]
    first = route["routes"][0]
    assert first == {"receiver": "inferwatch-diagnose", "matchers": ['source="inferwatch"'],
                     "group_wait": "5s", "continue": True}
    assert all(not r.get("continue") for r in route["routes"][1:])
    assert [r["name"] for r in frag["receivers"]] == ["inferwatch-diagnose", "oncall", "llm-team-slack",
                                                      "inferwatch-null"]
    assert yaml.safe_load(routing.fragment(DEFAULT))["route"]["group_by"][0] == "namespace"


def test_every_inhibit_rule_has_a_reason_comment():
    lines = routing.fragment(DEFAULT).split("inhibit_rules:\n", 1)[1].splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("- ")]
    assert len(starts) == 8
    assert all(lines[i - 1].startswith("# ") and len(lines[i - 1]) > 40 for i in starts)


def test_fragment_is_deterministic():
    assert routing.fragment(ACK) == routing.fragment(ACK)
    assert routing.sample_config(DEFAULT) == routing.sample_config(DEFAULT)


# ---- routing cases with amtool --------------------------------------------------------------------

CONTRACT_CASES = [  # synthetic alerts built from the label contract, independent of which alerts exist
    ({"alertname": "LLMModelErrorBudgetBurn", "severity": "critical", "tier": "model", "slo": "availability",
      "burn_tier": "page-fast", "long": "1h", "short": "5m"}, ("diagnose", "pager")),
    ({"alertname": "LLMModelErrorBudgetBurn", "severity": "warning", "tier": "model", "slo": "ttft",
      "burn_tier": "ticket-slow", "long": "3d", "short": "6h"}, ("diagnose", "ticket")),
    ({"alertname": "LLMPodKVCacheSaturated", "severity": "warning", "tier": "pod"}, ("diagnose", "ticket")),
    ({"alertname": "LLMGPUXidError", "severity": "critical", "tier": "gpu", "gpu": "0", "UUID": "GPU-1",
      "hostname": "node-a"}, ("diagnose", "pager")),
    ({"alertname": "LLMPodPrefixCacheHitLow", "severity": "info", "tier": "pod"}, ("diagnose", "null")),
    ({"alertname": "LLMPodOddSeverity", "severity": "page", "tier": "pod"}, ("diagnose", "ticket")),
]


@pytest.mark.parametrize("cfg", [DEFAULT, ACK], ids=["default", "ack-labels-cluster"])
def test_contract_alerts_reach_their_receivers(cfg, tmp_path):
    config = sample_file(cfg, tmp_path)
    cases = [({"source": "inferwatch", **identity_labels(cfg), **labels}, receiver_names(cfg, roles))
             for labels, roles in CONTRACT_CASES]
    cases.append(({"alertname": "KubePodCrashLooping", "severity": "critical", "namespace": "llm"}, "default"))
    cases.append(({"alertname": "NodeDown", "team": "platform", "severity": "critical"}, "platform-team"))
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda c: routes_test(config, *c), cases))
    failures = [f"{labels} -> expected {want}: {res.stdout.strip()}"
                for (labels, want), res in zip(cases, results) if res.returncode != 0]
    assert not failures, "\n".join(failures)


def test_verify_receivers_catches_a_wrong_expectation(tmp_path):
    """Guards the test above: amtool must fail when the expected receivers are wrong."""
    labels = {"source": "inferwatch", "severity": "critical", "tier": "pod", **identity_labels(DEFAULT)}
    res = routes_test(sample_file(DEFAULT, tmp_path), labels, "inferwatch-pager")
    assert res.returncode != 0 and "inferwatch-diagnose,inferwatch-pager" in res.stdout


def test_every_generated_alert_has_a_routing_case():
    missing = sorted({(r.alert, r.labels.get("severity", "")) for r in generated_alerts(DEFAULT)}
                     - ROUTING_CASES.keys())
    assert not missing, f"add these (alertname, severity) keys to ROUTING_CASES in {__file__}: {missing}"


def test_generated_alerts_follow_the_contract_and_reach_their_receivers(tmp_path):
    config = sample_file(DEFAULT, tmp_path)
    cases = []
    for rule in generated_alerts(DEFAULT):
        roles = ROUTING_CASES.get((rule.alert, rule.labels.get("severity", "")))
        if roles is None:
            continue  # reported by test_every_generated_alert_has_a_routing_case
        assert rule.labels.get("source") == "inferwatch", f"{rule.alert}: label source must be inferwatch"
        assert roles == BY_SEVERITY[rule.labels["severity"]], f"{rule.alert}: routing case contradicts severity"
        tier = rule.labels.get("tier")
        assert tier in ("model", "pod", "gpu"), f"{rule.alert}: tier {tier!r} not model|pod|gpu"
        cases.append(({**identity_labels(DEFAULT), **rule.labels, "alertname": rule.alert},
                      receiver_names(DEFAULT, roles)))
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda c: routes_test(config, *c), cases))
    failures = [f"{labels['alertname']} -> expected {want}: {res.stdout.strip()}"
                for (labels, want), res in zip(cases, results) if res.returncode != 0]
    assert not failures, "\n".join(failures)


# ---- inhibition in a real Alertmanager ------------------------------------------------------------

def alert(name: str, severity: str, tier: str, **labels: str) -> dict:
    """An alert under the contract; keyword labels named like IDENTITY keys override the identity."""
    ident = {k: v for k, v in labels.items() if k in IDENTITY}
    extra = {k: v for k, v in labels.items() if k not in IDENTITY}
    return {"labels": {"alertname": name, "source": "inferwatch", "severity": severity, "tier": tier,
                       **identity_labels(DEFAULT, **ident), **extra}}


def burn(tier: str, slo: str = "ttft", **labels: str) -> dict:
    severity = "critical" if tier.startswith("page") else "warning"
    return alert("LLMModelErrorBudgetBurn", severity, "model", slo=slo, burn_tier=tier, **labels)


INHIBITION = {  # name -> (alert, name of the alert expected to inhibit it, or None); severities as generated
    # fast burn silences the slower tiers of the same SLO and model only
    "fast": (burn("page-fast", namespace="burn"), None),
    "slow": (burn("page-slow", namespace="burn"), "fast"),
    "slow-other-slo": (burn("page-slow", slo="itl", namespace="burn"), None),
    "slow-other-model": (burn("page-slow", namespace="burn", model="other"), None),
    # the outage tier silences page-fast (and slower) of the same SLO and model
    "outage": (burn("page-outage", namespace="outage"), None),
    "outage-fast": (burn("page-fast", namespace="outage"), "outage"),
    "outage-other-slo": (burn("page-fast", slo="availability", namespace="outage"), None),
    # critical silences warnings of the same model
    "crit": (alert("LLMModelServingAbsent", "critical", "model", namespace="sev"), None),
    "warn": (alert("LLMPodKVCacheSaturated", "warning", "pod", namespace="sev"), "crit"),
    "warn-other-model": (alert("LLMPodKVCacheSaturated", "warning", "pod", namespace="sev", model="m2"), None),
    # a down pod silences its other pod-tier alerts, not other pods', not its GPU alerts
    "down": (alert("LLMPodTargetDown", "warning", "pod", namespace="down"), None),
    "down-cause": (alert("LLMPodQueueBacklog", "warning", "pod", namespace="down"), "down"),
    "down-other-pod": (alert("LLMPodQueueBacklog", "warning", "pod", namespace="down", pod="chat-0"), None),
    "down-gpu": (alert("LLMGPUThrottled", "warning", "gpu", namespace="down", gpu="0"), None),
    # a GPU hardware fault silences the pod-tier cause alerts of the pod on that GPU, not its target-down
    "xid": (alert("LLMGPUXidError", "warning", "gpu", namespace="gpu", gpu="3", UUID="GPU-3"), None),
    "xid-latency": (alert("LLMPodKVCacheSaturated", "warning", "pod", namespace="gpu"), "xid"),
    "xid-other-pod": (alert("LLMPodKVCacheSaturated", "warning", "pod", namespace="gpu", pod="chat-0"), None),
    "ecc": (alert("LLMGPUEccOrRowRemapFailure", "warning", "gpu", namespace="ecc", gpu="1"), None),
    "ecc-down": (alert("LLMPodTargetDown", "warning", "pod", namespace="ecc"), None),
}


def test_inhibit_rules_in_a_real_alertmanager():
    cfg = dataclasses.replace(DEFAULT, routing=dataclasses.replace(
        DEFAULT.routing, diagnose_url="http://127.0.0.1:9/alerts"))  # nothing listens; delivery is not tested
    with LocalAlertmanager(routing.sample_config(cfg)) as am:
        am.post_alerts([a for a, _ in INHIBITION.values()])
        want = {name: src for name, (_, src) in INHIBITION.items()}
        deadline = time.monotonic() + 15
        while True:
            got = inhibited_by(am, INHIBITION)
            if got == want or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert got == want


def inhibited_by(am: LocalAlertmanager, cases: dict) -> dict[str, str | None]:
    """For each case, the name of the case that inhibits it (None when not inhibited)."""
    held = {tuple(sorted(a["labels"].items())): a for a in am.alerts()}
    fingerprint_to_name = {}
    for name, (a, _) in cases.items():
        fingerprint_to_name[held[tuple(sorted(a["labels"].items()))]["fingerprint"]] = name
    out = {}
    for name, (a, _) in cases.items():
        by = held[tuple(sorted(a["labels"].items()))]["status"]["inhibitedBy"]
        out[name] = fingerprint_to_name.get(by[0]) if by else None
    return out


@pytest.mark.parametrize("text,message", [
    ("routing: {pager_receiver: inferwatch-ticket}", "the four receiver names must be non-empty and different"),
    ("routing: {diagnose_url: 'inferwatch-diagnose:9095'}", "routing.diagnose_url: 'inferwatch-diagnose:9095' is not"),
    ("routing: {group_wait: soon}", "routing.group_wait: expected a duration"),
])
def test_routing_config_errors_name_the_key(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(text, "inferwatch.yaml")
