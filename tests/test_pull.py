"""Pull mode against a real Alertmanager loaded with the generated routing (its inhibition rules included) and
fed alerts as our rules label them: silenced, inhibited and foreign alerts are left out, the rest is grouped
as the routing tree groups them and each group diagnosed against a real Prometheus."""
from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
import yaml

from inferwatch.core.config import Config
from inferwatch.diagnose.pull import generator, parse_filters
from inferwatch.generate import routing
from inferwatch.sandbox.localprom import LocalAlertmanager, free_port

REPO = Path(__file__).resolve().parent.parent
SCENARIO = "vllm-kv-cache-pressure"
INCIDENT = "2026-01-01T01:50:00Z"
DIAGNOSE = [sys.executable, "-c", "import sys; from inferwatch.cli import diagnose_main; sys.exit(diagnose_main())"]
CHAT = {"source": "inferwatch", "tier": "pod", "namespace": "llm", "workload_name": "chat", "backend": "vllm",
        "model_name": "Qwen/Qwen2.5-7B-Instruct"}


def rule_expr(alertname: str) -> str:
    for path in (REPO / "rules" / "prometheus" / "rules").glob("*.rules.yaml"):
        for g in yaml.safe_load(path.read_text())["groups"]:
            for r in g["rules"]:
                if r.get("alert") == alertname:
                    return r["expr"]
    raise KeyError(alertname)


def alert(prom_url: str, alertname: str, starts: str = INCIDENT, **labels: str) -> dict:
    """An alert as Prometheus sends it for one of our rules (generatorURL included)."""
    expr = rule_expr(alertname)
    return {"labels": {**labels, "alertname": alertname}, "annotations": {"summary": alertname},
            "startsAt": starts, "endsAt": (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat(),
            "generatorURL": f"{prom_url}/graph?g0.expr={quote(expr)}&g0.tab=1"}


@pytest.fixture(scope="module")
def alertmanager(scenario_prometheus):
    prom = scenario_prometheus(SCENARIO)
    with LocalAlertmanager(routing.sample_config(Config())) as am:
        am.post_alerts([
            # One group (model chat, alertname): two pods; the later start is the diagnosis time.
            alert(prom.url, "LLMPodKVCacheSaturated", **CHAT, pod="chat-1", severity="warning"),
            alert(prom.url, "LLMPodKVCacheSaturated", "2026-01-01T01:45:00Z", **CHAT, pod="chat-0",
                  severity="warning"),
            # Another group: another workload, no data there.
            alert(prom.url, "LLMPodQueueBacklog", **{**CHAT, "workload_name": "batch"}, pod="batch-0",
                  severity="warning"),
            # Inhibited: an info of a model a warning already reports (routing.inhibit_rules).
            alert(prom.url, "LLMPodPrefixCacheHitRatioCollapse", **CHAT, pod="chat-1", severity="info"),
            # Silenced below.
            alert(prom.url, "LLMPodPreemptionStorm", **CHAT, pod="chat-1", severity="warning"),
            # Not ours: no source="inferwatch".
            {"labels": {"alertname": "Watchdog", "severity": "none"}, "startsAt": INCIDENT},
        ])
        now = datetime.now(timezone.utc)
        r = requests.post(am.url + "/api/v2/silences", timeout=10, json={
            "matchers": [{"name": "alertname", "value": "LLMPodPreemptionStorm", "isRegex": False, "isEqual": True}],
            "startsAt": now.isoformat(), "endsAt": (now + timedelta(hours=1)).isoformat(),
            "createdBy": "test", "comment": "maintenance"})
        r.raise_for_status()
        states = {a["labels"]["alertname"]: a["status"] for a in am.alerts()}
        assert states["LLMPodPreemptionStorm"]["silencedBy"]
        assert states["LLMPodPrefixCacheHitRatioCollapse"]["inhibitedBy"]
        yield am, prom


def diagnose(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*DIAGNOSE, *args], capture_output=True, text=True, timeout=180)


def test_groups_are_diagnosed_with_their_labels_and_start(alertmanager):
    am, prom = alertmanager
    res = diagnose("--alertmanager", am.url, "--format", "json")  # Prometheus taken from generatorURL
    assert res.returncode == 1, res.stderr  # one group is degraded
    out = json.loads(res.stdout)
    assert [g["alertnames"] for g in out] == [["LLMPodQueueBacklog"], ["LLMPodKVCacheSaturated"]]
    batch, chat = out
    assert chat["alerts"] == 2 and chat["scope"] == {"namespace": "llm", "workload": "chat",
                                                     "model": "Qwen/Qwen2.5-7B-Instruct"}
    assert chat["group"] == {"namespace": "llm", "workload_name": "chat", "model_name": "Qwen/Qwen2.5-7B-Instruct",
                             "alertname": "LLMPodKVCacheSaturated"}
    assert chat["at"] == INCIDENT and chat["exprs"] == [rule_expr("LLMPodKVCacheSaturated")]
    assert chat["report"]["status"] == "degraded"
    cause = chat["report"]["root_causes"][0]
    assert cause["cause"] == "kv_cache_pressure" and cause["entities"][0]["pod"] == "chat-1"
    assert batch["scope"]["workload"] == "batch" and batch["report"]["status"] == "unknown"
    assert batch["prometheus"] == chat["prometheus"] == prom.url  # the generatorURL's base


def test_filters_narrow_and_text_shows_each_group(alertmanager):
    am, prom = alertmanager
    res = diagnose("--alertmanager", am.url, "--prometheus", prom.url, "--filter", "workload_name=chat")
    assert res.returncode == 1, res.stderr
    assert res.stdout.count("=== ") == 1 and "=== LLMPodKVCacheSaturated (2 alerts) ===" in res.stdout
    assert "kv_cache_pressure" in res.stdout and "alert expression: " in res.stdout
    none = diagnose("--alertmanager", am.url, "--filter", "namespace=elsewhere", "--format", "json")
    assert none.returncode == 0 and json.loads(none.stdout) == [] and "no active" in none.stderr
    foreign = diagnose("--alertmanager", am.url, "--prometheus", prom.url, "--filter", "alertname=Watchdog",
                       "--filter", "source=", "--format", "json")
    assert [g["alertnames"] for g in json.loads(foreign.stdout)] == [["Watchdog"]]


def test_html_pages_per_group(alertmanager, tmp_path):
    am, _ = alertmanager
    res = diagnose("--alertmanager", am.url, "--format", "html", "--report-dir", str(tmp_path))
    assert res.returncode == 1, res.stderr
    pages = sorted(tmp_path.glob("*.html"))
    assert len(pages) == 2 and len(res.stdout.splitlines()) == 2
    chat = next(p for p in pages if "LLMPodKVCacheSaturated" in p.name)
    assert 'data-node="kv_cache_pressure"' in chat.read_text()


@pytest.mark.parametrize("args,code,message", [
    (["--filter", "namespace"], 2, "--filter: expected label=value"),
    (["--namespace", "llm"], 2, "--alertmanager takes scope and time from the alerts; drop --namespace"),
    (["--format", "html"], 2, "give --report-dir DIR"),
])
def test_usage_errors_name_the_option(alertmanager, args, code, message):
    am, _ = alertmanager
    res = diagnose("--alertmanager", am.url, *args)
    assert res.returncode == code and message in res.stderr and "Traceback" not in res.stderr


def test_unreachable_alertmanager_exits_3():
    res = diagnose("--alertmanager", f"http://127.0.0.1:{free_port()}")
    assert res.returncode == 3 and "unreachable" in res.stderr and "Traceback" not in res.stderr


def test_generator_url_and_filters():
    assert generator("http://prom.example:9090/prefix/graph?g0.expr=up%20%3D%3D%200&g0.tab=1") == \
        ("up == 0", "http://prom.example:9090/prefix")
    assert generator("") == (None, None)
    assert parse_filters(["a=b", "c=d=e", "e="]) == {"a": "b", "c": "d=e", "e": ""}
