"""The defects of issue 16, each with a test that failed before its fix: output folders inferwatch does not
own, secrets, `$` in scope values, deadlines, partial diagnoses, malformed API answers, config and flag
validation, and the webhook under hostile clients. Fake HTTP servers on 127.0.0.1 stand in for
Prometheus only where a failure mode needs one (hangs, garbage); everything else runs a real Prometheus.
"""
from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import LoopbackServer
from inferwatch.cli import main as inferwatch_main
from inferwatch.generate.writer import MARKER

INFERWATCH = [sys.executable, "-m", "inferwatch.cli"]


# ---- 1. generate -o writes only into a folder it owns ----------------------------------------------------

def test_generate_refuses_a_folder_it_does_not_own_and_keeps_its_contents(tmp_path, capsys):
    (tmp_path / ".git").mkdir()
    (tmp_path / "notes.md").write_text("x")
    assert inferwatch_main(["generate", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and str(tmp_path) in err and "--force" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == [".git", "notes.md"]


def test_generate_into_an_existing_file_is_one_line_and_hides_nothing(tmp_path, capsys):
    target = tmp_path / "out"
    target.write_text("keep me")
    assert inferwatch_main(["generate", "-o", str(target)]) == 2
    assert inferwatch_main(["generate", "-o", str(target), "--force"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and all(str(target) in line for line in err.strip().splitlines())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"] and target.read_text() == "keep me"


def test_generate_rewrites_its_own_folder_and_force_overrides(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()  # empty: accepted
    assert inferwatch_main(["generate", "-o", str(out)]) == 0
    assert (out / MARKER).is_file()
    (out / "prometheus" / "stale.yaml").write_text("old")
    assert inferwatch_main(["generate", "-o", str(out)]) == 0  # carries the marker: replaced as a whole
    assert not (out / "prometheus" / "stale.yaml").exists()
    other = tmp_path / "other"
    other.mkdir()
    (other / "x").write_text("x")
    assert inferwatch_main(["generate", "-o", str(other), "--force"]) == 0
    assert not (other / "x").exists() and (other / MARKER).is_file()
    assert inferwatch_main(["generate", "--check", "-o", str(other)]) == 0


def test_generated_output_is_world_readable_under_a_022_umask(tmp_path):
    out = tmp_path / "out"
    old = os.umask(0o022)
    try:
        assert inferwatch_main(["generate", "-o", str(out)]) == 0
    finally:
        os.umask(old)
    for path in [out, *out.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o004, f"{path} is {oct(mode)}"
        if path.is_dir():
            assert mode & 0o001, f"{path} is {oct(mode)}"


def test_committed_rules_folder_carries_the_marker():
    assert (Path(__file__).resolve().parent.parent / "rules" / MARKER).is_file()


# ---- 2. secrets never in logs, reports, metrics or process arguments ------------------------------------

def test_serve_keeps_the_prometheus_password_and_the_slack_url_secret(tmp_path):
    from test_webhook import chat_webhook, payload, serve_process
    from inferwatch.sandbox.localprom import free_port
    dead = f"http://alice:PASSW0RD-xyz@127.0.0.1:{free_port()}"  # nothing listens: the diagnosis fails
    with chat_webhook() as (hook, posts):
        secret_hook = hook + "/T000/B000/SECRETPATH"
        env = {**os.environ, "IW_SLACK": secret_hook}
        with serve_process(dead, "--slack-url-env", "IW_SLACK", "--jsonl", str(tmp_path / "out.jsonl"),
                           env=env) as (url, proc):
            import requests
            assert requests.post(url + "/alerts", json=payload(), timeout=5).status_code == 202
            wait_until(lambda: posts, 20)
            metrics = requests.get(url + "/metrics", timeout=5).text
            cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode()
            proc.send_signal(__import__("signal").SIGTERM)
            _, err = proc.communicate(timeout=20)
    report = (tmp_path / "out.jsonl").read_text()
    assert "Unreachable" in report and "127.0.0.1" in report and "listening on http://127.0.0.1" in err
    for text in (err, report, metrics, posts[0]["text"]):
        assert "PASSW0RD" not in text and "SECRETPATH" not in text and "alice" not in text
    assert "SECRETPATH" not in cmdline  # (the password is in it: the test passed it as --prometheus)


def test_slack_url_from_a_file_and_failures_name_only_the_host(tmp_path):
    import argparse
    from inferwatch.diagnose.serve import slack_url
    from inferwatch.diagnose.sinks import SlackSink
    f = tmp_path / "slack"
    f.write_text("http://127.0.0.1:1/services/T/B/SECRETPATH\n")
    args = argparse.Namespace(slack_url=None, slack_url_file=str(f), slack_url_env=None)
    assert slack_url(args) == "http://127.0.0.1:1/services/T/B/SECRETPATH"
    sink = SlackSink(slack_url(args), timeout=2)
    with pytest.raises(OSError) as exc:
        sink.deliver(_failed_outcome())
    assert "127.0.0.1" in str(exc.value) and "SECRETPATH" not in str(exc.value)


def test_url_credentials_and_a_token_are_not_silently_mixed():
    from inferwatch.core.prometheus import Connection, PromClient
    with pytest.raises(ValueError, match="use one"):
        PromClient("http://u:p@127.0.0.1:1", Connection(bearer_token="t"))
    client = PromClient("http://u:p%40ss@127.0.0.1:1")
    assert client.session.auth == ("u", "p@ss") and "p%40ss" not in client.base and "u:" not in client.base
    with pytest.raises(ValueError) as exc:
        PromClient("ftp://u:SECRET@host")
    assert "SECRET" not in str(exc.value)


def _failed_outcome():
    from datetime import datetime, timezone
    from inferwatch.diagnose.sinks import Outcome
    now = datetime.now(timezone.utc)
    return Outcome(key="k", group_key="g", status="firing", alertnames=("A",), scope={}, at=now,
                   received_at=now, duration_seconds=0.0, error="Unreachable: test")


def wait_until(check, timeout: float, step: float = 0.1):
    import time
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"not true within {timeout}s")


# ---- 3. `$` in scope values reaches label_replace escaped ------------------------------------------------

KV = "vllm-kv-cache-pressure"  # raw engine metrics only (no recording rules): inline's filters run
REAL = {"model": "Qwen/Qwen2.5-7B-Instruct", "namespace": "llm", "workload": "chat", "pod": "chat-1"}
DOLLARS = ("$1", "${x}", "$name", "$9")


def _incident_at() -> float:
    from inferwatch.sandbox import scenario
    sc = scenario.load(KV)
    return sc.start + sc.incident_at


@pytest.mark.parametrize("role", sorted(REAL))
def test_dollar_in_a_scope_value_does_not_diagnose_the_real_entity(scenario_prometheus, role):
    from inferwatch.core.config import Config
    from inferwatch.diagnose import engine
    from inferwatch.diagnose.scope import Scope
    prom = scenario_prometheus(KV)
    real = engine.run(prom.url, Scope(**{role: REAL[role]}), _incident_at(), "15m", Config())
    assert real.status == "degraded"  # the control: the exact value does find the incident
    for suffix in DOLLARS:
        report = engine.run(prom.url, Scope(**{role: REAL[role] + suffix}), _incident_at(), "15m", Config())
        assert (report.status, report.root_causes, report.errors) == ("unknown", [], []), (role, suffix)


def test_dollar_in_the_model_through_the_cli(scenario_prometheus, capsys):
    import json
    from inferwatch.cli import diagnose_main
    url = scenario_prometheus(KV).url
    code = diagnose_main(["--prometheus", url, "--at", str(_incident_at()), "--format", "json",
                          "--model", "Qwen/Qwen2.5-7B-Instruct$9", "--namespace", "llm${x}"])
    report = json.loads(capsys.readouterr().out)
    assert code == 4 and report["status"] == "unknown" and report["root_causes"] == []
    assert report["scope"] == {"model": "Qwen/Qwen2.5-7B-Instruct$9", "namespace": "llm${x}"}


def test_dollar_in_alert_labels_through_the_webhook(scenario_prometheus, tmp_path):
    import json
    import requests
    from test_webhook import payload, running
    from inferwatch.core.config import Config
    from inferwatch.diagnose.webhook import engine_diagnose
    diagnose = engine_diagnose(scenario_prometheus(KV).url, "15m", Config())
    with running(diagnose, tmp_path) as (url, receiver):
        for i, labels in enumerate([{"pod": "chat-1$name"}, {"model_name": "Qwen/Qwen2.5-7B-Instruct$1"},
                                    {"workload_name": "chat${x}"}, {}]):
            body = payload(fingerprint=f"f{i}", **labels)
            assert requests.post(url + "/alerts", json=body, timeout=5).status_code == 202
        out = tmp_path / "out.jsonl"
        lines = wait_until(lambda: out.exists() and len(out.read_text().splitlines()) == 4 and
                           out.read_text().splitlines(), 60)
    by_fp = {json.loads(line)["key"].split("|")[2][:2]: json.loads(line) for line in lines}
    assert by_fp["f3"]["report"]["status"] == "degraded"  # the control: the real labels find the incident
    for fp in ("f0", "f1", "f2"):
        assert by_fp[fp]["report"]["status"] == "unknown" and by_fp[fp]["report"]["root_causes"] == []


# ---- fake Prometheus for failure modes ------------------------------------------------------------------

class FakePrometheus(LoopbackServer):
    """A loopback HTTP server for one failure mode. `answer(path, form) -> (status, body, drip)` decides:
    with `drip` set, the headers go out at once and the body one byte every `drip` seconds. `upstream`
    forwards to a real Prometheus when `answer` returns None."""

    def __init__(self, answer, upstream: str | None = None) -> None:
        from http.server import BaseHTTPRequestHandler
        from urllib.parse import parse_qs, urlsplit
        super().__init__()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _serve(self, method: str) -> None:
                import requests
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                form = {k: v[0] for k, v in parse_qs(raw.decode() or urlsplit(self.path).query).items()}
                decided = answer(urlsplit(self.path).path, form)
                if decided is None:
                    r = requests.request(method, upstream + self.path, data=raw, timeout=30,
                                         headers={"Content-Type": self.headers.get("Content-Type", "")})
                    decided = (r.status_code, r.content, None)
                status, body, drip = decided
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    if drip is None:
                        self.wfile.write(body)
                        return
                    for i in range(len(body)):
                        self.wfile.write(body[i:i + 1])
                        self.wfile.flush()
                        if fake.released.wait(drip):
                            return
                except OSError:
                    pass

            def do_GET(self):
                self._serve("GET")

            def do_POST(self):
                self._serve("POST")

        self.listen(Handler)


OK_NAMES = b'{"status":"success","data":["vllm:num_requests_running","vllm:kv_cache_usage_perc"]}'


def run_diagnose(url: str, *args: str, config: str | None = None, tmp_path: Path | None = None,
                 timeout: float = 120):
    """`diagnose` as a real process: (exit code, stdout, stderr, wall seconds)."""
    import time
    argv = [sys.executable, "-c", "import sys; from inferwatch.cli import diagnose_main; "
                                  "sys.exit(diagnose_main())", "--prometheus", url, *args]
    if config is not None:
        cfg = tmp_path / "inferwatch.yaml"
        cfg.write_text(config)
        argv += ["--config", str(cfg)]
    t0 = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr, time.monotonic() - t0


# ---- 4. one overall deadline, enforced on the wall clock ------------------------------------------------

def test_a_dripping_server_ends_at_the_deadline(tmp_path):
    body = b'{"status":"success","data":["vllm:num_requests_running"]}'
    with FakePrometheus(lambda path, form: (200, body, 3.0)) as fake:
        code, out, err, took = run_diagnose(fake.url, config="diagnose: {deadline: 4s, query_timeout: 20s}",
                                            tmp_path=tmp_path)
    assert code == 3 and took < 15, (code, took, err)  # 4 s deadline + interpreter start; the body drips 3 min
    assert len(err.strip().splitlines()) == 1 and "deadline" in err, err


def hang_on_gpu_queries(path, form):
    """Answer the GPU (DCGM) queries with valid JSON that takes 3 s to send; names and inventory go to the real Prometheus."""
    if "DCGM" in form.get("query", ""):
        return 200, b'{"status":"success","data":{"resultType":"matrix","result":[]}}' * 4, 3.0
    return None


def test_some_queries_dripping_end_at_the_deadline_and_the_report_says_so(scenario_prometheus, tmp_path):
    import json

    with FakePrometheus(hang_on_gpu_queries, scenario_prometheus(KV).url) as fake:
        code, out, err, took = run_diagnose(fake.url, "--at", str(_incident_at()), "--format", "json",
                                            config="diagnose: {deadline: 5s, query_timeout: 30s}",
                                            tmp_path=tmp_path)
    report = json.loads(out)
    assert took < 15, (took, err)
    assert 4.5 <= report["stats"]["duration_seconds"] <= took
    assert report["errors"] and all("deadline" in e["error"] for e in report["errors"])


def test_serve_exits_within_the_shutdown_grace_while_a_diagnosis_hangs(scenario_prometheus, tmp_path):
    import json
    import signal
    import time
    import requests
    from test_webhook import payload, serve_process

    with FakePrometheus(hang_on_gpu_queries, scenario_prometheus(KV).url) as fake:
        with serve_process(fake.url, "--shutdown-grace", "3", "--jsonl", str(tmp_path / "out.jsonl"),
                           "--spool", str(tmp_path / "spool.json")) as (url, proc):
            assert requests.post(url + "/alerts", json=payload(), timeout=5).status_code == 202
            wait_until(lambda: "inferwatch_webhook_diagnoses_in_progress 1" in
                       requests.get(url + "/metrics", timeout=5).text, 10)
            time.sleep(1)
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=30)
            took = time.monotonic() - t0
    assert proc.returncode == 0 and took < 5, took
    assert len(json.loads((tmp_path / "spool.json").read_text())) == 1  # the hung diagnosis is kept


# ---- 5. failed or unfinished nodes are never healthy ------------------------------------------------------

HEALTHY = "diag-healthy"


def _healthy_at() -> float:
    from inferwatch.sandbox import scenario
    sc = scenario.load(HEALTHY)
    return sc.start + sc.incident_at


SYMPTOM = "time_to_first_token"  # the raw TTFT histogram the ttft_high symptom reads


def test_failed_symptom_queries_make_a_healthy_diagnosis_partial(scenario_prometheus, tmp_path):
    import json

    def answer(path, form):  # the TTFT queries fail on the server; everything else is real
        if SYMPTOM in form.get("query", ""):
            return 422, b'{"status":"error","errorType":"execution","error":"too many samples"}', None
        return None

    prom = scenario_prometheus(HEALTHY)
    code, out, _, _ = run_diagnose(prom.url, "--at", str(_healthy_at()), "--format", "json", tmp_path=tmp_path)
    assert code == 0 and json.loads(out)["status"] == "healthy"  # the control
    with FakePrometheus(answer, prom.url) as fake:
        runs = {fmt: run_diagnose(fake.url, "--at", str(_healthy_at()), "--format", fmt, tmp_path=tmp_path)
                for fmt in ("json", "text", "markdown")}
    report = json.loads(runs["json"][1])
    assert {c for c, *_ in runs.values()} == {5}
    failed = sorted(e["node"] for e in report["errors"])
    assert report["status"] == "partial" and "ttft_high" in failed and "error_rate_high" not in failed
    assert sorted(u["node"] for u in report["unchecked"]) == failed
    assert "too many samples" in report["unchecked"][0]["reason"]
    # what an unchecked symptom could hide is checked: the causes below it were queried
    assert report["nodes"]["gpu_hardware_fault"] == report["nodes"]["queue_backlog"] == "normal"
    for fmt in ("text", "markdown"):
        shown = runs[fmt][1]
        assert shown.startswith(("PARTIAL", "### inferwatch diagnose: PARTIAL")) and "Not checked" in shown
        assert all(n in shown for n in failed)


def test_a_healthy_diagnosis_asks_nothing_below_its_symptoms(scenario_prometheus, tmp_path):
    """No symptom holds: no cause could explain one, so failing GPU queries are never sent."""
    import json

    with FakePrometheus(hang_on_gpu_queries, scenario_prometheus(HEALTHY).url) as fake:
        code, out, _, _ = run_diagnose(fake.url, "--at", str(_healthy_at()), "--format", "json",
                                       config="diagnose: {deadline: 4s}", tmp_path=tmp_path)
    report = json.loads(out)
    assert code == 0 and report["status"] == "healthy" and report["errors"] == []
    assert {report["nodes"][n] for n in ("gpu_hardware_fault", "queue_backlog")} == {"skipped"}


def test_unfinished_symptoms_make_a_healthy_diagnosis_partial(scenario_prometheus, tmp_path):
    import json

    def hang(path, form):
        if SYMPTOM in form.get("query", ""):
            return 200, b'{"status":"success","data":{"resultType":"matrix","result":[]}}' * 4, 3.0
        return None

    with FakePrometheus(hang, scenario_prometheus(HEALTHY).url) as fake:
        code, out, _, _ = run_diagnose(fake.url, "--at", str(_healthy_at()), "--format", "json",
                                       config="diagnose: {deadline: 2s}", tmp_path=tmp_path)
    report = json.loads(out)
    assert code == 5 and report["status"] == "partial"
    assert report["unchecked"] and all("deadline" in u["reason"] for u in report["unchecked"])


# ---- 6. malformed answers exit 3 with one line; every flag is validated ---------------------------------

@pytest.mark.parametrize("body, names_ok", [
    (b"null", False), (b"[1,2,3]", False), (b'{"status":"success"}', False), (b'"success"', False),
    (b'{"status":"success","data":{"resultType":"vector","result":5}}', True),
    (b'{"status":"success","data":{"resultType":"vector","result":[{"metric":null}]}}', True),
    (b'{"status":"success","data":null}', True),
])
def test_malformed_answers_exit_3_with_one_line(body, names_ok, capsys):
    from inferwatch.cli import diagnose_main

    def answer(path, form):
        return (200, OK_NAMES if names_ok and path.endswith("/values") else body, None)

    with FakePrometheus(answer) as fake:
        code = diagnose_main(["--prometheus", fake.url])
    err = capsys.readouterr().err
    assert code == 3 and len(err.strip().splitlines()) == 1 and "malformed answer" in err, err


@pytest.mark.parametrize("argv, message", [
    (["--at", "1e20"], "--at"), (["--at", "inf"], "--at"), (["--at", "nan"], "--at"), (["--at", "-5"], "--at"),
    (["--at", "9999-01-01T00:00:00Z"], "--at"),
    (["--window", "5m5h"], "--window"), (["--window", "1ms"], "--window"), (["--window", "0s"], "--window"),
    (["--window", "1.5h"], "--window"), (["--bearer-token-file", "/nonexistent/token"], "--bearer-token-file"),
    (["--ca-bundle", "/nonexistent/ca.pem"], "--ca-bundle"),
])
def test_bad_diagnose_flags_exit_2_naming_the_flag(argv, message, capsys):
    from inferwatch.cli import diagnose_main
    with FakePrometheus(lambda path, form: (200, OK_NAMES, None)) as fake:
        code = diagnose_main(["--prometheus", fake.url, *argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("argv", [
    ["--shutdown-grace", "nan"], ["--shutdown-grace", "-1"], ["--shutdown-grace", "inf"], ["--window", "30s5m"],
    ["--window", "10s"], ["--concurrency", "0"], ["--listen", "127.0.0.1:99999"], ["--prometheus", "ftp://x"],
    ["--slack-url-env", "IW_NOT_SET_ANYWHERE"], ["--slack-url-file", "/nonexistent/slack"],
])
def test_bad_serve_flags_exit_2_without_traceback(argv):
    base = ["serve", "--listen", "127.0.0.1:0", "--prometheus", "http://127.0.0.1:1"]
    proc = subprocess.run([*INFERWATCH, *base, *argv], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and proc.stderr.strip(), proc.stderr


# ---- 7. config validation catches what generators and promtool would reject ------------------------------

@pytest.mark.parametrize("text, key", [
    ("recording: {rate_window: 0s}", "recording.rate_window"),
    ("alerts: {serving_lookback: 30s1h}", "alerts.serving_lookback"),
    ("alerts: {for_durations: {LLMPodKVCacheSaturated: 5m1h}}", "alerts.for_durations.LLMPodKVCacheSaturated"),
    ("scrape: {interval: 30s5m}", "scrape.interval"),
    ("diagnose: {query_timeout: 0s}", "diagnose.query_timeout"),
    ("diagnose: {deadline: 0s}", "diagnose.deadline"),
    ("alerts: {queue_waiting: -1}", "alerts.queue_waiting"),
    ("alerts: {queue_waiting: .nan}", "alerts.queue_waiting"),
    ("alerts: {imbalance_factor: .inf}", "alerts.imbalance_factor"),
    ("diagnose: {thresholds: {ttft_seconds: -.inf}}", "diagnose.thresholds.ttft_seconds"),
    ("diagnose: {thresholds: {error_ratio: 2}}", "diagnose.thresholds.error_ratio"),
    ("output: {runbook_base_url: 'https://x/{{ .Labels.x }}'}", "output.runbook_base_url"),
    ("output: {runbook_base_url: 'https://x/a b'}", "output.runbook_base_url"),
    ("routing: {diagnose_url: 'http://x/\"'}", "routing.diagnose_url"),
    ("scrape: {port: 'http|.*'}", "scrape.port"),
    ("scrape: {namespace: Bad_NS}", "scrape.namespace"),
    ("scrape: {namespaces: [llm, 'a b']}", "scrape.namespaces[1]"),
    ("scrape: {name: 'Pod Monitor'}", "scrape.name"),
    ("scrape: {workload_pod_label: 'bad key!'}", "scrape.workload_pod_label"),
    ("output: {prometheus_rule_labels: {release: 'kube prom'}}", "output.prometheus_rule_labels.release"),
])
def test_config_rejects_what_would_break_generated_output(tmp_path, text, key):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text + "\n")
    proc = subprocess.run([*INFERWATCH, "config", "-c", str(cfg)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and f"{cfg}:1: {key}:" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_yaml_12_floats_are_numbers():
    from inferwatch.core.config import parse_config
    assert parse_config("alerts: {kv_cache_usage: 9.5e-1, preemption_rate: 1e-3}").alerts.preemption_rate == 0.001


def test_overrides_make_no_duplicate_rules_for_promtool(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("slo:\n  models:\n    - {model: a, ttft: {threshold_seconds: 0.1}, availability: "
                   "{objective_percent: 99.9}}\n    - {model: b, namespace: llm, itl: {enabled: false}}\n")
    out = tmp_path / "out"
    assert inferwatch_main(["generate", "-c", str(cfg), "-o", str(out)]) == 0
    for f in sorted((out / "prometheus" / "rules").glob("*.yaml")):
        proc = subprocess.run(["promtool", "check", "rules", "--lint=all", "--lint-fatal", str(f)],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_validating_overrides_is_linear():
    import time
    from inferwatch.core.config import parse_config

    def took(n: int) -> float:
        text = "slo:\n  models:\n" + "".join(f"    - {{model: m{i}, ttft: {{objective_percent: 98}}}}\n"
                                            for i in range(n))
        t0 = time.process_time()
        parse_config(text)
        return time.process_time() - t0

    small, large = took(300), took(1500)  # 5x the overrides: ~5x the time (quadratic would be ~25x)
    assert large < 12 * small, (small, large)


# ---- 8. the webhook under hostile clients and at shutdown -------------------------------------------------

def _metric(url: str, name: str) -> float:
    import requests
    total = 0.0
    for line in requests.get(url + "/metrics", timeout=5).text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.fixture
def unreachable_engine():
    """The real engine against a closed port: every diagnosis fails fast (and is delivered as failed)."""
    from inferwatch.core.config import Config
    from inferwatch.diagnose.webhook import engine_diagnose
    from inferwatch.sandbox.localprom import free_port
    return engine_diagnose(f"http://127.0.0.1:{free_port()}", "15m", Config())


def test_deeply_nested_json_gets_400_and_is_counted(unreachable_engine, tmp_path):
    import requests
    from test_webhook import running
    with running(unreachable_engine, tmp_path) as (url, _):
        for body in (b"[" * 300_000, b'{"a":' * 100_000, b'{"version":"4","x":' + b"[" * 40 + b"]" * 40 + b"}"):
            r = requests.post(url + "/alerts", data=body, timeout=10)
            assert r.status_code == 400 and "nests deeper" in r.json()["error"]
        assert _metric(url, "inferwatch_webhook_invalid_requests_total") == 3
        assert requests.get(url + "/healthz", timeout=5).status_code == 200


def test_go_zero_start_time_is_refused(unreachable_engine, tmp_path):
    import requests
    from test_webhook import payload, running
    with running(unreachable_engine, tmp_path) as (url, _):
        r = requests.post(url + "/alerts", json=payload(starts="0001-01-01T00:00:00Z"), timeout=5)
    assert r.status_code == 400 and "startsAt" in r.json()["error"]


def test_a_lone_surrogate_label_still_gives_a_whole_report_and_no_tmp(unreachable_engine, tmp_path):
    import json
    from test_webhook import payload
    from inferwatch.core.config import Config
    from inferwatch.diagnose.sinks import JsonLinesSink, MarkdownDirSink
    from inferwatch.diagnose.webhook import Receiver, parse_notification
    reports = tmp_path / "reports"
    receiver = Receiver(Config(), unreachable_engine,
                        [MarkdownDirSink(reports), JsonLinesSink(str(tmp_path / "out.jsonl"))]).start()
    body = json.dumps(payload(pod="chat-\ud800")).encode()  # json.dumps writes the \\ud800 escape
    assert receiver.submit(parse_notification(body))[0] == 202
    wait_until(lambda: (tmp_path / "out.jsonl").exists(), 20)
    assert receiver.stop(10) == 0
    assert _metric_value(receiver, "inferwatch_webhook_sink_failures_total") == 0
    files = sorted(p.name for p in reports.iterdir())
    assert [f.rsplit(".", 1)[1] for f in files] == ["html", "md"], files  # whole reports, no .tmp
    assert "chat-\\ud800" in (reports / files[1]).read_text(encoding="utf-8")


def _metric_value(receiver, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in receiver.metrics.render().splitlines()
               if line.startswith(name))


def test_a_client_trickling_its_request_is_cut_off_at_the_deadline(unreachable_engine):
    import socket
    import threading
    import time
    from inferwatch.core.config import Config
    from inferwatch.diagnose.webhook import Receiver, make_server
    receiver = Receiver(Config(), unreachable_engine, []).start()
    server = make_server(receiver, "127.0.0.1", 0, 1 << 20, max_connections=2, read_deadline=2.0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        slow = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
        time.sleep(0.3)
        with socket.create_connection(("127.0.0.1", port)) as third:  # over the cap: 503 at once
            third.settimeout(5)
            assert third.recv(100).startswith(b"HTTP/1.0 503")
        t0 = time.monotonic()
        got = b""
        slow[0].settimeout(10)
        for ch in b"POST /alerts HTTP/1.1\r\nHost: x\r\n":  # one byte every 0.5 s: each read is quick
            try:
                slow[0].sendall(bytes([ch]))
            except OSError:
                break
            time.sleep(0.5)
            if time.monotonic() - t0 > 4:
                break
        try:
            got = slow[0].recv(200)
        except OSError:
            pass
        assert got.startswith(b"HTTP/1.0 408") and time.monotonic() - t0 < 5
        slow[1].settimeout(10)
        assert slow[1].recv(200).startswith(b"HTTP/1.0 408")  # the idle one hits the deadline too
        for s in slow:
            s.close()
        time.sleep(0.5)  # both slots are free again
        with socket.create_connection(("127.0.0.1", port)) as again:
            again.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
            again.settimeout(5)
            assert again.recv(100).startswith(b"HTTP/1.0 200")
        m = [line for line in receiver.metrics.render().splitlines() if "total" in line and "#" not in line]
        assert 'inferwatch_webhook_invalid_requests_total{code="408"} 2' in m, m
        assert "inferwatch_webhook_connections_refused_total 1" in m, m
    finally:
        server.shutdown()
        server.server_close()
        receiver.stop(1)


def test_every_request_of_a_concurrent_burst_is_answered_and_counted(unreachable_engine, tmp_path):
    import json
    from concurrent.futures import ThreadPoolExecutor
    import requests
    from test_webhook import payload, running
    bodies = [json.dumps(payload(fingerprint=f"f{i % 20}")).encode() if i % 3 else b"{broken" for i in range(1500)]
    with running(unreachable_engine, tmp_path) as (url, _):
        def post(body):
            with requests.Session() as s:
                return s.post(url + "/alerts", data=body, timeout=30).status_code
        with ThreadPoolExecutor(50) as pool:
            codes = list(pool.map(post, bodies))
        assert all(c in (200, 202, 400, 503) for c in codes)
        assert _metric(url, "inferwatch_webhook_requests_total") == len(bodies)
        assert codes.count(400) == _metric(url, "inferwatch_webhook_invalid_requests_total") == 500


def test_sigterm_answers_503_then_spools_what_is_left_and_the_next_start_resumes(scenario_prometheus, tmp_path):
    import json
    import signal
    import time
    import requests
    from test_webhook import payload, serve_process
    spool, out = tmp_path / "spool.json", tmp_path / "out.jsonl"

    def hang(path, form):  # names answer; every query hangs: no diagnosis can finish
        return (200, OK_NAMES, None) if path.endswith("/values") else (200, b"{" + b" " * 100, 3.0)

    with FakePrometheus(hang) as fake:
        with serve_process(fake.url, "--concurrency", "1", "--shutdown-grace", "2", "--spool", str(spool),
                           "--jsonl", str(out)) as (url, proc):
            for i in range(3):
                body = payload(alertname=f"LLMAlert{i}", fingerprint=f"g{i}")
                assert requests.post(url + "/alerts", json=body, timeout=5).status_code == 202
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            late = requests.post(url + "/alerts", json=payload(alertname="LLMLate", fingerprint="late"), timeout=5)
            _, err = proc.communicate(timeout=20)
    assert late.status_code == 503
    assert proc.returncode == 0 and "3 notifications not diagnosed within the grace: spooled" in err, err
    assert not out.exists() or out.read_text() == ""  # nothing half-delivered
    assert sorted(e["notification"]["alerts"][0]["labels"]["alertname"] for e in json.loads(spool.read_text())) \
        == ["LLMAlert0", "LLMAlert1", "LLMAlert2"]
    with serve_process(scenario_prometheus(KV).url, "--spool", str(spool), "--jsonl", str(out)) as (url, proc):
        lines = wait_until(lambda: out.exists() and len(out.read_text().splitlines()) == 3
                           and out.read_text().splitlines(), 60)
        assert _metric(url, "inferwatch_webhook_notifications_resumed_total") == 3
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
    assert sorted(json.loads(line)["alertnames"][0] for line in lines) == ["LLMAlert0", "LLMAlert1", "LLMAlert2"]
    assert all(json.loads(line)["report"]["status"] == "degraded" for line in lines)
    assert not spool.exists()
