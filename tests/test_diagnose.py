"""diagnose: end-to-end against real Prometheus processes loaded with inferwatch/sandbox/scenarios/diag-*.yaml.

Each scenario's `expect:` block says what a correct diagnosis names; the tests run the engine at the
scenario's incident time and compare. Failure paths use real processes too: a closed port for
"Prometheus down", and a loopback proxy in front of a real Prometheus that holds back one node's query
(a timeout) and records the headers it receives (credentials).
"""
from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import unquote_to_bytes

import networkx as nx
import promql_parser
import pytest
import requests

from conftest import LoopbackServer
from inferwatch.diagnose import command as cli
from inferwatch.cli import diagnose_main

from inferwatch.diagnose import engine

from inferwatch.diagnose import graph
from inferwatch.core.prometheus import Unreachable
from inferwatch.sandbox.localprom import free_port
from inferwatch.diagnose.planner import Planner
from inferwatch.diagnose.queries import node_query
from inferwatch.diagnose.engine import SCREEN
from inferwatch.diagnose.scope import Scope, Window
from inferwatch.sandbox import scenario
from inferwatch.cli import main as inferwatch_main
from inferwatch.core.config import Config, load_config, parse_config

CFG = load_config(None)
DIAG = sorted(p.stem for p in scenario.FIXTURES.glob("diag-*.yaml")) + ["vllm-kv-cache-pressure"]
DOCS = Path(__file__).resolve().parent.parent / "docs" / "diagnose.md"


@pytest.fixture(scope="module", autouse=True)
def _start_scenarios_in_parallel(scenario_prometheus):
    """Simulate, backfill and start every scenario's Prometheus at once (the session fixture caches them)."""
    scenario_prometheus.start_all(DIAG)


def diagnose(prom, name: str, scope: Scope = Scope(), cfg: Config = CFG, **conn) -> engine.Report:
    sc = scenario.load(name)
    return engine.run(prom.url if hasattr(prom, "url") else prom, scope, sc.start + sc.incident_at, "15m",
                      cfg, **conn)


def named(root: dict) -> set[str]:
    return {e["pod"] for e in root["entities"]}


# ---- one scenario per cause, healthy, two faults, red herring -----------------------------------------

@pytest.mark.parametrize("name", DIAG)
def test_scenario_diagnosis_matches_expectation(scenario_prometheus, name):
    expect = scenario.load(name).expect
    report = diagnose(scenario_prometheus(name), name).to_dict()
    assert report["status"] == expect["status"], report
    assert report["errors"] == []
    roots = report["root_causes"]
    if expect["status"] == "healthy":
        assert roots == [] and report["symptoms"] == []
        return
    if "top_cause" in expect:
        top = roots[0]
        assert top["cause"] == expect["top_cause"], [(r["cause"], r["score"]) for r in roots]
        assert named(top) == set(expect["pods"])
        if "gpus" in expect:
            assert {f"{e['pod']}/{e['gpu']}" for e in top["entities"]} == set(expect["gpus"])
    for cause, pods in (expect.get("causes") or {}).items():
        match = [r for r in roots if r["cause"] == cause]
        assert match and named(match[0]) == set(pods), roots
    for pod in expect.get("not_named", ()):
        assert all(pod not in named(r) for r in roots)
    for cause, pods in (expect.get("after_symptom") or {}).items():
        late = [r for r in roots if r["cause"] == cause]
        assert late and late[0]["onset_vs_symptom"] == "after" and named(late[0]) == set(pods)
        assert late[0]["rank"] > 1


@pytest.mark.parametrize("name", ["diag-vllm-0.8-gpu-hardware-fault", "diag-vllm-0.8-gpu-throttling",
                                  "diag-vllm-gpu-memory-pressure", "diag-sglang-gpu-compute-saturation",
                                  "diag-sglang-host-bottleneck", "diag-two-faults"])
def test_gpu_screens_drop_no_gpu_the_range_queries_find(scenario_prometheus, name, monkeypatch):
    """The instant screens (diagnose/screen.py) are a necessary condition: every GPU node reads the same
    with them as when its range query reads every GPU, and the screens did screen."""
    prom = scenario_prometheus(name)
    screened = diagnose(prom, name)
    ran = {n[:-len(SCREEN)] for n in screened.timings if n.endswith(SCREEN)}
    assert ran >= {"gpu_hardware_fault", "gpu_memory_pressure", "gpu_compute_saturation"} - {
        n for n, r in screened.nodes.items() if r.state in ("no_data", "skipped")}
    monkeypatch.setattr(engine, "screen_query", lambda cfg, q: None)
    plain = diagnose(prom, name)
    assert not any(n.endswith(SCREEN) for n in plain.timings)
    assert screened.to_dict()["nodes"] == plain.to_dict()["nodes"]
    assert screened.to_dict()["root_causes"] == plain.to_dict()["root_causes"]


def test_evidence_carries_numbers_against_references(scenario_prometheus):
    report = diagnose(scenario_prometheus("vllm-kv-cache-pressure"), "vllm-kv-cache-pressure").to_dict()
    top = report["root_causes"][0]
    kv = next(e for e in top["evidence"] if e["signal"] == "kv_usage")
    assert kv["value"] > 0.95 and kv["reference"] == CFG.diagnose.thresholds.kv_cache_usage
    ttft = next(e for s in report["symptoms"] if s["symptom"] == "ttft_high" for e in s["entities"][0]["evidence"]
                if e["against"] == "baseline")
    assert ttft["value"] > 3 * ttft["reference"]
    assert top["path"][0] in graph.SYMPTOMS and top["path"][-1] == "kv_cache_pressure"
    assert top["onset"] < report["at"] and top["next_step"]


@pytest.mark.parametrize("name", ["diag-vllm-traffic-surge", "diag-vllm-load-imbalance", "diag-sglang-host-bottleneck",
                                  "vllm-kv-cache-pressure"])
def test_mechanisms_never_outrank_the_cause_that_accounts_for_them(scenario_prometheus, name):
    """On simulated overloads the queue or the batch grows too, yet neither is a root cause on the pods
    of the cause that accounts for it."""
    report = diagnose(scenario_prometheus(name), name).to_dict()
    top = report["root_causes"][0]
    assert top["cause"] == scenario.load(name).expect["top_cause"]
    mechanisms = {"queue_backlog", "large_decode_batch"}
    assert not any(r["cause"] in mechanisms and named(r) & named(top) for r in report["root_causes"])
    assert any(report["nodes"][m] == "anomalous" for m in mechanisms)  # the overload moved them too


def test_root_causes_state_the_numbers_that_account_for_the_symptom(scenario_prometheus):
    """Little's law and the TTFT split on a simulated surge and a throttled GPU: the surge shows as
    arrivals (the batch is full, completions cannot follow) and a TTFT that is nearly all queue wait; the
    throttled pod's requests stay longer in its batch. Little's law holds on the simulated series."""
    surge = diagnose(scenario_prometheus("diag-vllm-traffic-surge"), "diag-vllm-traffic-surge")
    acc = surge.to_dict()["root_causes"][0]["accounting"]
    assert acc["pods"] == 3 and acc["littles_law"]["counts"] == "running"
    assert acc["arrival_rate"]["now"] > 1.8 * acc["arrival_rate"]["baseline"]
    law = acc["littles_law"]["now"]
    assert law["observed"] == pytest.approx(law["predicted"], rel=0.4)
    split = acc["ttft"]
    assert split["now"]["queue_wait"] > 0.8 * split["now"]["ttft"] > 10 * split["baseline"]["ttft"]
    assert split["now"]["prefill"] == pytest.approx(split["now"]["ttft"] - split["now"]["queue_wait"], abs=0.01)
    text = surge.render("text")
    assert "Little's law" in text and "arrivals" in text and "queue wait" in text
    assert "Little&#x27;s law" in surge.render("html")
    hot = diagnose(scenario_prometheus("diag-vllm-0.8-gpu-throttling"), "diag-vllm-0.8-gpu-throttling").to_dict()
    top = hot["root_causes"][0]
    assert top["cause"] == "gpu_throttling" and top["accounting"]["pods"] == 1
    law = top["accounting"]["littles_law"]
    assert law["now"]["seconds"] > 1.3 * law["baseline"]["seconds"]
    assert law["now"]["observed"] == pytest.approx(law["now"]["predicted"], rel=0.4)


def test_old_vllm_names_are_detected_and_reported(scenario_prometheus):
    report = diagnose(scenario_prometheus("diag-vllm-0.8-prefix-cache-miss"), "diag-vllm-0.8-prefix-cache-miss")
    sources = report.to_dict()["sources"]
    assert sources["kv_usage"] == {"mode": "raw", "metrics": ["vllm:gpu_cache_usage_perc"]}
    assert "vllm:gpu_prefix_cache_hits_total" in sources["prefix_hit"]["metrics"]
    assert sources["ecc_dbe"]["mode"] == "missing"  # not in dcgm-exporter's default CSV: no data, no error


def test_scope_limits_the_diagnosis_to_one_model(scenario_prometheus):
    prom = scenario_prometheus("diag-red-herring")
    other = diagnose(prom, "diag-red-herring", Scope(model="BAAI/bge-m3")).to_dict()
    assert other["status"] == "healthy" and other["root_causes"] == []
    chat = diagnose(prom, "diag-red-herring", Scope(namespace="llm", workload="chat")).to_dict()
    assert chat["root_causes"][0]["cause"] == "kv_cache_pressure"
    assert all(e["model_name"] == "Qwen/Qwen2.5-7B-Instruct" for r in chat["root_causes"] for e in r["entities"])


def test_query_count_does_not_depend_on_pods(scenario_prometheus):
    """One request per node (a GPU node's screen), one more per GPU node whose screen kept GPUs, and a
    fixed few: the number of pods and GPUs never adds requests."""
    fixed = []
    for name in ("vllm-kv-cache-pressure", "diag-two-faults"):
        report = diagnose(scenario_prometheus(name), name)
        screened = [n for n in report.timings if n + SCREEN in report.timings]
        fixed.append(report.queries - len(screened))
    assert fixed[0] == fixed[1] <= len(graph.NODES) + 2


# ---- renderings ----------------------------------------------------------------------------------------

def test_text_markdown_and_json_renderings(scenario_prometheus):
    report = diagnose(scenario_prometheus("diag-two-faults"), "diag-two-faults")
    text = report.render("text")
    assert text.startswith("DEGRADED") and "kv_cache_pressure" in text and "chat-2/gpu0" in text
    assert "chain: error_rate_high <- gpu_hardware_fault" in text
    md = report.render("markdown")
    assert md.startswith("### inferwatch diagnose: DEGRADED") and "`gpu_hardware_fault`" in md
    data = json.loads(report.render("json"))
    assert data == json.loads(json.dumps(report.to_dict()))
    assert {"schema", "status", "scope", "at", "window", "symptoms", "root_causes", "errors", "nodes",
            "sources", "stats"} <= set(data)
    for r in data["root_causes"]:
        assert {"rank", "cause", "tier", "score", "entities", "path", "evidence", "next_step"} <= set(r)
        assert r["cause"] in graph.CAUSES and 0 < r["score"] <= 1
    assert [r["rank"] for r in data["root_causes"]] == list(range(1, len(data["root_causes"]) + 1))


# ---- the graph -------------------------------------------------------------------------------------------

def test_graph_is_a_dag_whose_causes_are_reachable_and_documented():
    g = graph.build()
    assert nx.is_directed_acyclic_graph(g)
    reachable = set().union(*(nx.descendants(g, s) for s in graph.SYMPTOMS))
    assert reachable == set(graph.CAUSES)
    doc = DOCS.read_text()
    for node in graph.NODES:
        assert f"`{node.id}`" in doc, f"docs/diagnose.md does not document {node.id}"


def test_every_cause_has_a_scenario():
    covered = {scenario.load(n).expect.get("top_cause") for n in DIAG}
    covered |= {c for n in DIAG for c in (scenario.load(n).expect.get("causes") or {})}
    assert set(graph.CAUSES) <= covered


def test_recorded_series_are_preferred_when_deployed():
    win = Window(at=1_767_232_200, window=900, baseline=3600, step=60)
    recorded = {"llm_pod:kv_cache_usage:max", "llm_pod:preemptions:rate5m"}
    q = node_query(CFG, Planner(CFG, Scope(), recorded), graph.BY_ID["kv_cache_pressure"], win)
    assert {s.mode for s in q.sources.values()} == {"recorded"}
    assert "vllm:" not in q.text and "llm_pod:kv_cache_usage:max" in q.text
    raw = node_query(CFG, Planner(CFG, Scope(), {"vllm:kv_cache_usage_perc", "vllm:num_preemptions_total"}),
                     graph.BY_ID["kv_cache_pressure"], win)
    assert "sglang:" not in raw.text and "vllm:kv_cache_usage_perc" in raw.text


# ---- hostile input ----------------------------------------------------------------------------------------

HOSTILE = 'x"} or vector(1) or {a="\\\n'


def test_hostile_label_values_stay_label_values():
    win = Window(at=1_767_232_200, window=900, baseline=3600, step=60)
    names = {"llm_pod:kv_cache_usage:max", "llm_pod:preemptions:rate5m"}
    q = node_query(CFG, Planner(CFG, Scope(namespace=HOSTILE, model=HOSTILE), names),
                   graph.BY_ID["kv_cache_pressure"], win)
    promql_parser.parse(q.text)  # still one well-formed query
    sel = Scope(model=HOSTILE).matchers(CFG, "llm_pod")[0]
    from inferwatch.core.promql import Selector
    parsed = promql_parser.parse(Selector("llm_pod:kv_cache_usage:max", (sel,)).render())
    assert isinstance(parsed, promql_parser.VectorSelector)
    assert [(m.name, m.value) for m in parsed.matchers.matchers] == [("model_name", HOSTILE)]


def test_hostile_scope_matches_nothing_on_a_real_prometheus(scenario_prometheus):
    report = diagnose(scenario_prometheus("vllm-kv-cache-pressure"), "vllm-kv-cache-pressure", Scope(model=HOSTILE))
    assert report.status == "unknown" and report.errors == [] and report.root_causes == []


# ---- failure paths -----------------------------------------------------------------------------------------

class Proxy(LoopbackServer):
    """A loopback HTTP proxy to a real Prometheus: records request headers, and never answers queries
    that contain `stall` (the connection stays open until the proxy stops)."""

    def __init__(self, upstream: str, stall: str | None = None) -> None:
        self.upstream, self.stall, self.headers = upstream, stall, []
        super().__init__()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _forward(self, method: str) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                proxy.headers.append(dict(self.headers))
                if proxy.stall and proxy.stall.encode() in unquote_to_bytes(body):
                    proxy.released.wait(30)
                    return
                r = requests.request(method, proxy.upstream + self.path, data=body,
                                     headers={"Content-Type": self.headers.get("Content-Type", "")}, timeout=30)
                self.send_response(r.status_code)
                self.send_header("Content-Type", r.headers.get("Content-Type", "application/json"))
                self.send_header("Content-Length", str(len(r.content)))
                self.end_headers()
                self.wfile.write(r.content)

            def do_GET(self):
                self._forward("GET")

            def do_POST(self):
                self._forward("POST")

        self.listen(Handler)


def test_one_query_timing_out_gives_a_partial_result(scenario_prometheus):
    cfg = parse_config("diagnose: {query_timeout: 1s, deadline: 20s}")
    with Proxy(scenario_prometheus("vllm-kv-cache-pressure").url, stall="DCGM_FI_DEV_SM_CLOCK") as proxy:
        started = time.monotonic()
        report = diagnose(proxy, "vllm-kv-cache-pressure", cfg=cfg).to_dict()
        assert time.monotonic() - started < 5
    assert [e["node"] for e in report["errors"]] == ["gpu_throttling"]
    assert "1s" in report["errors"][0]["error"]
    assert report["nodes"]["gpu_throttling"] == "error"
    assert report["status"] == "degraded" and report["root_causes"][0]["cause"] == "kv_cache_pressure"


def test_connection_options_reach_prometheus_and_secrets_stay_out_of_output(scenario_prometheus, tmp_path,
                                                                             monkeypatch, capsys):
    token = "s3cr3t-token-value"
    monkeypatch.setenv("IW_TEST_TOKEN", token)
    sc = scenario.load("vllm-kv-cache-pressure")
    with Proxy(scenario_prometheus("vllm-kv-cache-pressure").url) as proxy:
        code = diagnose_main(["--prometheus", proxy.url, "--at", str(sc.start + sc.incident_at), "--format", "json",
                         "--bearer-token-env", "IW_TEST_TOKEN", "-H", "X-Scope-OrgID: team-a"])
    out, err = capsys.readouterr()
    assert code == cli.EXIT_DEGRADED and json.loads(out)["status"] == "degraded"
    assert all(h.get("Authorization") == f"Bearer {token}" and h.get("X-Scope-OrgID") == "team-a"
               for h in proxy.headers)
    assert token not in out + err


def test_prometheus_down_is_a_clear_error_with_its_own_exit_code(capsys):
    url = f"http://user:hunter2@127.0.0.1:{free_port()}"
    with pytest.raises(Unreachable):
        engine.run(url, Scope(), None, "15m", CFG)
    assert diagnose_main(["--prometheus", url]) == cli.EXIT_UNREACHABLE
    assert inferwatch_main(["diagnose", "--prometheus", url]) == cli.EXIT_UNREACHABLE
    err = capsys.readouterr().err
    assert "Prometheus unreachable" in err and "connection refused" in err
    assert "hunter2" not in err and "Traceback" not in err


def test_server_that_accepts_but_never_answers_is_unreachable(capsys):
    import socket
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        cfg = parse_config("diagnose: {query_timeout: 1s}")
        started = time.monotonic()
        with pytest.raises(Unreachable):
            engine.run(f"http://127.0.0.1:{port}", Scope(), None, "15m", cfg)
        assert time.monotonic() - started < 5


@pytest.mark.parametrize("argv, message", [
    (["--prometheus", "http://127.0.0.1:1", "--window", "fast"], "--window"),
    (["--prometheus", "http://127.0.0.1:1", "--at", "yesterday"], "--at"),
    (["--prometheus", "ftp://x"], "http(s)"),
    ([], "--prometheus URL is required"),
    (["--prometheus", "http://127.0.0.1:1", "-H", "no-colon"], "--header"),
    (["--prometheus", "http://127.0.0.1:1", "--format", "yaml"], "invalid choice"),
])
def test_usage_errors_exit_2_naming_the_option(argv, message, capsys, monkeypatch):
    monkeypatch.delenv("INFERWATCH_PROMETHEUS_URL", raising=False)
    assert diagnose_main(argv) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_config_errors_name_file_line_and_key(tmp_path, capsys):
    bad = tmp_path / "inferwatch.yaml"
    bad.write_text("diagnose:\n  quantile: 0.75\n")
    assert diagnose_main(["--prometheus", "http://127.0.0.1:1", "--config", str(bad)]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "diagnose.quantile" in err and str(bad) in err
