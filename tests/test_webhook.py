"""The webhook receiver with real parts: the diagnosis engine against a real Prometheus loaded from a
scenario, a real Alertmanager for the end-to-end path, and `inferwatch serve` as a real process."""
from __future__ import annotations

import copy
import json
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from inferwatch.sandbox.localprom import LocalAlertmanager, free_port
from inferwatch.diagnose.sinks import JsonLinesSink, MarkdownDirSink, SlackSink
from inferwatch.diagnose.webhook import PayloadError, Receiver, engine_diagnose, make_server, parse_notification
from inferwatch.generate import routing
from inferwatch.core.config import Config, parse_config

SCENARIO = "vllm-kv-cache-pressure"
INCIDENT = "2026-01-01T01:50:00Z"  # the scenario's incident_at (110m after its start)
CFG = Config()
LABELS = {"source": "inferwatch", "severity": "warning", "tier": "pod", "namespace": "llm",
          "workload_name": "chat", "backend": "vllm", "model_name": "Qwen/Qwen2.5-7B-Instruct", "pod": "chat-1"}
INFERWATCH = [sys.executable, "-m", "inferwatch.cli"]


def payload(alertname: str = "LLMPodKVCacheSaturated", status: str = "firing", fingerprint: str = "a1",
            starts: str = "2026-01-01T01:50:00.123456789Z", **labels: str) -> dict:
    """A version 4 notification as Alertmanager 0.25+ sends it, including fields we do not use."""
    alert_labels = {**LABELS, "alertname": alertname, **labels}
    return {
        "version": "4", "groupKey": f'{{}}/{{source="inferwatch"}}:{{alertname="{alertname}"}}',
        "truncatedAlerts": 0, "status": status, "receiver": "inferwatch-diagnose",
        "groupLabels": {"alertname": alertname}, "commonLabels": alert_labels, "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093", "notification_reason": "new", "routeLabels": {},
        "alerts": [{"status": status, "labels": alert_labels, "annotations": {"summary": "KV cache full."},
                    "startsAt": starts, "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://prometheus:9090/graph", "fingerprint": fingerprint}],
    }


# ---- parsing -------------------------------------------------------------------------------------

def test_parse_takes_go_timestamps_and_ignores_unknown_fields():
    n = parse_notification(json.dumps({**payload(), "somethingNew": [1, 2]}).encode())
    assert n.status == "firing" and n.alertnames() == ("LLMPodKVCacheSaturated",)
    assert n.latest_start().isoformat() == "2026-01-01T01:50:00.123456+00:00"
    assert n.common_labels()["pod"] == "chat-1"


def test_scope_uses_common_labels_under_configured_names():
    from inferwatch.diagnose.webhook import scope_of
    two = payload()
    other = copy.deepcopy(two["alerts"][0])
    other["labels"]["pod"], other["fingerprint"] = "chat-0", "b2"
    two["alerts"].append(other)
    scope = scope_of(parse_notification(json.dumps(two).encode()), CFG)
    assert scope == {"namespace": "llm", "workload": "chat", "model": "Qwen/Qwen2.5-7B-Instruct", "pod": None,
                     "cluster": None}
    ack = parse_config("labels: {namespace: pod_namespace, pod: pod_name}")
    renamed = payload(pod_namespace="llm-ack", pod_name="chat-9")
    assert scope_of(parse_notification(json.dumps(renamed).encode()), ack)["pod"] == "chat-9"


def mutate(path: str, value):
    p = payload()
    target, *keys = path.split(".")
    obj = p
    for k in [target, *keys][:-1]:
        obj = obj[int(k)] if k.isdigit() else obj[k]
    last = [target, *keys][-1]
    if value is KeyError:
        del obj[last]
    else:
        obj[last] = value
    return json.dumps(p).encode()


BAD = [
    (b"not json", "body is not JSON"),
    (b"[1, 2]", "body must be a JSON object"),
    (mutate("version", "3"), "version: only webhook payload version 4"),
    (mutate("groupKey", KeyError), "groupKey: missing"),
    (mutate("status", "pending"), "status: expected firing or resolved"),
    (mutate("alerts", []), "alerts: empty"),
    (mutate("alerts", "x"), "alerts: expected list"),
    (mutate("alerts.0.startsAt", "yesterday"), "alerts[0].startsAt: expected an RFC 3339 time"),
    (mutate("alerts.0.labels", {"pod": 3}), "alerts[0].labels.pod: expected a string"),
    (mutate("alerts.0.fingerprint", KeyError), "alerts[0].fingerprint: missing"),
]


@pytest.mark.parametrize("body,message", BAD, ids=[m.split(":")[0] for _, m in BAD])
def test_parse_names_what_is_wrong(body, message):
    with pytest.raises(PayloadError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_notification(body)


# ---- a receiver in this process, with the real engine ---------------------------------------------

@contextmanager
def running(diagnose, tmp_path: Path, max_body: int = 1 << 20, **kwargs):
    """A receiver on a free loopback port writing JSON lines to tmp_path/out.jsonl; stopped by the test."""
    receiver = Receiver(CFG, diagnose, [JsonLinesSink(str(tmp_path / "out.jsonl"))], **kwargs).start()
    server = make_server(receiver, "127.0.0.1", 0, max_body)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", receiver
    finally:
        server.shutdown()
        server.server_close()
        receiver.stop(10)


def scrape(url: str) -> dict[str, float]:
    text = requests.get(url + "/metrics", timeout=5).text
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line and not line.startswith("#")}


def wait_for(predicate, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture(scope="module")
def engine(scenario_prometheus):
    return engine_diagnose(scenario_prometheus(SCENARIO).url, "15m", CFG)


def test_bad_requests_get_a_message_and_the_receiver_keeps_serving(engine, tmp_path):
    with running(engine, tmp_path, max_body=4096) as (url, _):
        for body, message in BAD:
            r = requests.post(url + "/alerts", data=body, timeout=5)
            assert r.status_code == 400 and message in r.json()["error"]
        r = requests.post(url + "/alerts", data=b"{" + b" " * 5000 + b"}", timeout=5)
        assert r.status_code == 413 and "exceeds the limit of 4096" in r.json()["error"]
        assert requests.post(url + "/elsewhere", json=payload(), timeout=5).status_code == 404
        assert requests.get(url + "/healthz", timeout=5).json() == {"status": "ok"}
        m = scrape(url)
        assert m['inferwatch_webhook_invalid_requests_total{code="400"}'] == len(BAD)
        assert m['inferwatch_webhook_invalid_requests_total{code="413"}'] == 1
        assert m["inferwatch_webhook_notifications_received_total"] == 0
    assert not (tmp_path / "out.jsonl").exists()


def test_a_flood_of_duplicates_is_diagnosed_once(engine, tmp_path):
    body = json.dumps(payload()).encode()
    with running(engine, tmp_path, concurrency=2) as (url, _):
        with ThreadPoolExecutor(16) as pool:
            codes = list(pool.map(lambda _: requests.post(url + "/alerts", data=body, timeout=10).status_code,
                                  range(200)))
        assert sorted(set(codes)) == [200, 202] and codes.count(202) == 1
        wait_for(lambda: scrape(url)["inferwatch_webhook_diagnosed_total"] == 1, what="the one diagnosis")
        m = scrape(url)
        assert m['inferwatch_webhook_notifications_skipped_total{reason="duplicate"}'] == 199
        assert m["inferwatch_webhook_diagnosis_duration_seconds_count"] == 1
    [rec] = records(tmp_path / "out.jsonl")
    assert rec["outcome"] == "diagnosed" and rec["scope"]["pod"] == "chat-1"
    assert rec["at"] == "2026-01-01T01:50:00.123456Z"


def test_full_queue_answers_503_and_alertmanagers_retry_is_accepted(engine, tmp_path):
    gate = threading.Event()

    def gated(scope, at):
        gate.wait(30)
        return engine(scope, at)

    with running(gated, tmp_path, concurrency=1, queue_size=1) as (url, _):
        post = lambda fp: requests.post(url + "/alerts", json=payload(fingerprint=fp), timeout=5)  # noqa: E731
        assert post("f1").status_code == 202
        wait_for(lambda: scrape(url)["inferwatch_webhook_diagnoses_in_progress"] == 1, what="worker busy")
        assert [post(fp).status_code for fp in ("f2", "f3")] == [202, 503]
        assert scrape(url)["inferwatch_webhook_queue_depth"] == 1
        gate.set()
        wait_for(lambda: scrape(url)["inferwatch_webhook_diagnosed_total"] == 2, what="two diagnoses")
        assert post("f3").status_code == 202  # the retry of the refused one
        wait_for(lambda: scrape(url)["inferwatch_webhook_diagnosed_total"] == 3, what="the retried one")
        assert scrape(url)['inferwatch_webhook_notifications_skipped_total{reason="queue_full"}'] == 1


def test_resolved_notifications_are_ignored_unless_asked(engine, tmp_path):
    resolved = payload(status="resolved")
    with running(engine, tmp_path) as (url, _):
        r = requests.post(url + "/alerts", json=resolved, timeout=5)
        assert r.status_code == 200 and r.json()["status"] == "ignored: resolved"
    assert not (tmp_path / "out.jsonl").exists()
    with running(engine, tmp_path, diagnose_resolved=True) as (url, _):
        assert requests.post(url + "/alerts", json=resolved, timeout=5).status_code == 202
        wait_for(lambda: records(tmp_path / "out.jsonl"), what="a diagnosis of the resolved alert")
    assert records(tmp_path / "out.jsonl")[0]["status"] == "resolved"


def test_prometheus_down_is_recorded_and_a_resend_retries(tmp_path):
    down = engine_diagnose(f"http://127.0.0.1:{free_port()}", "15m", CFG)  # nothing listens there
    with running(down, tmp_path) as (url, _):
        assert requests.post(url + "/alerts", json=payload(), timeout=5).status_code == 202
        [rec] = wait_for(lambda: records(tmp_path / "out.jsonl"), what="the failure record")
        assert rec["outcome"] == "failed" and rec["report"] is None and rec["error"]
        assert requests.get(url + "/healthz", timeout=5).status_code == 200
        assert scrape(url)["inferwatch_webhook_diagnosis_failures_total"] == 1
        r = requests.post(url + "/alerts", json=payload(), timeout=5)  # Alertmanager's next repeat
        assert r.status_code == 202 and r.json()["status"] == "queued"
        wait_for(lambda: len(records(tmp_path / "out.jsonl")) == 2, what="the second attempt")


def test_sinks_write_markdown_and_post_to_a_chat_webhook(engine, tmp_path):
    with chat_webhook() as (chat_url, posts):
        sinks = [MarkdownDirSink(tmp_path / "md"), SlackSink(chat_url)]
        receiver = Receiver(CFG, engine, sinks).start()
        assert receiver.submit(parse_notification(json.dumps(payload()).encode())) == (202, "queued")
        assert receiver.stop(30) == 0
        [md] = (tmp_path / "md").glob("*.md")
        assert md.name.startswith("20260101T015000Z-LLMPodKVCacheSaturated-")
        assert md.read_text().startswith("# Diagnosis: LLMPodKVCacheSaturated (firing) llm/chat")
        [post] = posts
        assert "LLMPodKVCacheSaturated" in post["text"]


@contextmanager
def chat_webhook():
    """A Slack-compatible incoming webhook on loopback that keeps what it receives."""
    posts: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            posts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *_):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", posts
    finally:
        server.shutdown()
        server.server_close()


# ---- `inferwatch serve` as a process ----------------------------------------------------------------

@contextmanager
def serve_process(prometheus_url: str, *args: str, env: dict | None = None):
    port = free_port()
    proc = subprocess.Popen([*INFERWATCH, "serve", "--listen", f"127.0.0.1:{port}", "--prometheus",
                             prometheus_url, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _healthy(url) or proc.poll() is not None, timeout=20, what="inferwatch serve")
        assert proc.poll() is None, proc.communicate()[1]
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _healthy(url: str) -> bool:
    try:
        return requests.get(url + "/healthz", timeout=1).ok
    except requests.RequestException:
        return False


def test_serve_usage_errors_exit_2_without_traceback():
    res = subprocess.run([*INFERWATCH, "serve", "--prometheus", "prometheus:9090"], capture_output=True, text=True)
    assert res.returncode == 2 and "expected an http(s):// URL" in res.stderr and "Traceback" not in res.stderr
    with ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as taken:
        res = subprocess.run([*INFERWATCH, "serve", "--prometheus", "http://127.0.0.1:9",
                              "--listen", f"127.0.0.1:{taken.server_address[1]}"], capture_output=True, text=True)
    assert res.returncode == 2 and "cannot listen" in res.stderr and "Traceback" not in res.stderr


def test_sigterm_finishes_the_queued_diagnosis_and_exits_0(scenario_prometheus, tmp_path):
    out = tmp_path / "d.jsonl"
    with serve_process(scenario_prometheus(SCENARIO).url, "--jsonl", str(out)) as (url, proc):
        assert requests.post(url + "/alerts", json=payload(), timeout=5).status_code == 202
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        stderr = proc.stderr.read()
    assert "stopping" in stderr and "Traceback" not in stderr
    [rec] = records(out)
    assert rec["outcome"] == "diagnosed"


def test_end_to_end_alertmanager_delivers_to_serve_which_names_the_cause(scenario_prometheus, tmp_path):
    """Alert -> real Alertmanager with the generated routing -> `inferwatch serve` -> real Prometheus."""
    with chat_webhook() as (chat_url, posts), \
            serve_process(scenario_prometheus(SCENARIO).url, "--markdown-dir", str(tmp_path / "md"),
                          "--jsonl", str(tmp_path / "d.jsonl"), "--slack-url", chat_url) as (url, proc):
        cfg = parse_config(f"routing: {{diagnose_url: '{url}/alerts', diagnose_group_wait: 1s}}")
        with LocalAlertmanager(routing.sample_config(cfg)) as am:
            am.post_alerts([{"labels": {**LABELS, "alertname": "LLMPodKVCacheSaturated"}, "startsAt": INCIDENT,
                             "annotations": {"summary": "KV cache of a pod is saturated."}}])
            [md] = wait_for(lambda: list((tmp_path / "md").glob("*.md")), timeout=40, what="a markdown report")
        text = md.read_text()
        assert "kv_cache_pressure" in text and "chat-1" in text
        [rec] = records(tmp_path / "d.jsonl")
        assert rec["at"] == "2026-01-01T01:50:00Z" and rec["outcome"] == "diagnosed"
        assert "kv_cache_pressure" in json.dumps(rec["report"])
        assert "kv_cache_pressure" in wait_for(lambda: posts, what="the chat post")[0]["text"]


def test_connection_options_reach_prometheus_and_diagnose_serve_is_serve():
    """`serve` passes the diagnose CLI's connection options (here a tenant header) to every query."""
    seen: list[str | None] = []

    class Recorder(BaseHTTPRequestHandler):
        def _answer(self):
            seen.append(self.headers.get("X-Scope-OrgID"))
            body = b'{"status":"success","data":[]}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        do_GET = do_POST = _answer

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        run = engine_diagnose(url, "15m", Config(), {"headers": {"X-Scope-OrgID": "tenant-a"}})
        from datetime import datetime, timezone
        run({}, datetime(2026, 1, 1, tzinfo=timezone.utc))
    finally:
        server.shutdown()
    assert seen and set(seen) == {"tenant-a"}
    out = subprocess.run([str(Path(sys.executable).parent / "diagnose"), "serve", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--bearer-token-file" in out.stdout and "webhook" in out.stdout
