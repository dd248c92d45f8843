"""Real promtool / Prometheus / Alertmanager processes; no mocks."""
from __future__ import annotations

import io
import math
import os
import time
from pathlib import Path

import pytest
import requests

from inferwatch.sandbox.localprom import (LocalAlertmanager, LocalPrometheus, free_port,
                                write_openmetrics)

T0 = 1767225600.0  # 2026-01-01T00:00:00Z
NASTY = 'say "hi"\\path\nnext line'
NOW = time.time()  # set again by the `prom` fixture: its gauge must end when the server starts, not at collection


def make_series(now: float) -> list:
    """Counter +30 every 15 s over 10 minutes -> rate 2/s; a gauge up to `now`; a nasty label."""
    return [
        ({"__name__": "vllm:request_success_total", "pod": "a"},
         [(T0 + i * 15, 30.0 * i) for i in range(41)]),
        ({"__name__": "vllm:num_requests_running", "pod": "a"},
         [(now - 600 + i * 15, float(i)) for i in range(41)]),
        ({"__name__": "vllm:request_success_total", "pod": "b", "note": NASTY},
         [(T0, 1.0), (T0 + 15, math.nan), (T0 + 30, math.inf)]),
    ]


SERIES = make_series(NOW)


def om_body(series) -> str:
    buf = io.StringIO()
    write_openmetrics(series, buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def rules(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("rules") / "rules.yml"
    path.write_text("groups:\n- name: test\n  rules:\n"
                    "  - record: pod:vllm_num_requests_running:sum\n"
                    "    expr: sum(vllm:num_requests_running)\n")
    return path


@pytest.fixture(scope="module")
def prom(rules):
    global NOW  # a suite past 5 minutes would otherwise leave the gauge stale before the rules run
    NOW = time.time()
    with LocalPrometheus(om_body(make_series(NOW)), rule_files=[rules], evaluation_interval="1s") as p:
        yield p


def test_write_openmetrics_format():
    body = om_body(SERIES + [({"__name__": "up"}, [(T0, -math.inf)])])
    lines = body.splitlines()
    assert lines[-1] == "# EOF" and body.endswith("\n")
    names = [line.split("{")[0].split(" ")[0] for line in lines[:-1]]
    # families contiguous: each name appears in a single run
    runs = [n for i, n in enumerate(names) if i == 0 or names[i - 1] != n]
    assert len(runs) == len(set(runs)) == 3
    assert 'note="say \\"hi\\"\\\\path\\nnext line"' in body
    assert " NaN " in body and " +Inf " in body and "up -Inf 1767225600.0" in body


def test_write_openmetrics_rejects_unordered():
    with pytest.raises(ValueError, match="not after"):
        om_body([({"__name__": "m"}, [(T0 + 15, 1.0), (T0, 2.0)])])


def test_rate_at_fixed_past_time(prom):
    res = prom.query('rate(vllm:request_success_total{pod="a"}[5m])', T0 + 450)
    assert res == [{"metric": {"pod": "a"}, "value": [T0 + 450, "2"]}]


def test_label_escaping_round_trip(prom):
    res = prom.query('vllm:request_success_total{pod="b"}', T0)
    assert [r["metric"]["note"] for r in res] == [NASTY]
    assert prom.query('vllm:request_success_total{pod="b"}', T0 + 15)[0]["value"][1] == "NaN"
    assert prom.query('vllm:request_success_total{pod="b"}', T0 + 30)[0]["value"][1] == "+Inf"


def test_samples_up_to_now(prom):
    res = prom.query("vllm:num_requests_running", NOW)
    assert res[0]["value"][1] == "40"


def test_recording_rule_loaded_and_reload(prom, rules):
    groups = requests.get(prom.url + "/api/v1/rules", timeout=5).json()["data"]["groups"]
    assert [r["name"] for g in groups for r in g["rules"]] == ["pod:vllm_num_requests_running:sum"]
    # rules evaluate "now" against backfilled data
    deadline = time.monotonic() + 60  # generous: a loaded CI machine evaluates late
    while not prom.query("pod:vllm_num_requests_running:sum") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert prom.query("pod:vllm_num_requests_running:sum")[0]["value"][1] == "40"
    rules.write_text(rules.read_text() + "  - record: extra:count\n    expr: vector(1)\n")
    prom.reload()
    groups = requests.get(prom.url + "/api/v1/rules", timeout=5).json()["data"]["groups"]
    assert len(groups[0]["rules"]) == 2


def test_env_and_unloading_rules(rules):
    """`env` reaches the process (a benchmark's GOGC), and `load_rules([])` stops evaluating without a
    restart (a benchmark's floor, measured on the head it has just filled)."""
    with LocalPrometheus(None, rule_files=[rules], evaluation_interval="1s", env={"GOGC": "400"}) as p:
        environ = Path(f"/proc/{p.pid}/environ").read_bytes().split(b"\0")
        assert b"GOGC=400" in environ
        listed = lambda: [g["name"] for g in  # noqa: E731
                          requests.get(p.url + "/api/v1/rules", timeout=5).json()["data"]["groups"]]
        assert listed() == ["test"]
        pid = p.pid
        p.load_rules([])
        assert listed() == [] and p.pid == pid


def test_query_error_is_clear(prom):
    with pytest.raises(RuntimeError, match="bad_data"):
        prom.query("rate(")


def test_stop_kills_process_and_cleans_up():
    p = LocalPrometheus().start()
    pid, workdir = p.pid, p.workdir
    assert requests.get(p.url + "/-/ready", timeout=5).ok
    p.stop()
    p.stop()  # idempotent
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert workdir is not None and not workdir.exists()


def test_caller_workdir_is_kept(tmp_path):
    with LocalPrometheus(workdir=tmp_path) as p:
        assert p.log_path.parent == tmp_path
    assert (tmp_path / "prometheus.log").exists() and (tmp_path / "data").is_dir()


def test_openmetrics_path_input(tmp_path):
    path = tmp_path / "in.om"
    path.write_text(om_body(SERIES[:1]))
    with LocalPrometheus(path) as p:
        assert p.query("count(vllm:request_success_total)", T0 + 60)[0]["value"][1] == "1"


def test_bad_openmetrics_reports_promtool_message():
    with pytest.raises(RuntimeError, match="expected comma or left brace"):
        LocalPrometheus('m{pod="a" 1 2\n# EOF\n').start()


def test_free_port_is_bindable():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", free_port()))


AM_CONFIG = """
route:
  receiver: blackhole
  group_wait: 0s
receivers:
- name: blackhole
"""


def test_alertmanager_round_trip():
    with LocalAlertmanager(AM_CONFIG) as am:
        am.post_alerts([{"labels": {"alertname": "VLLMQueueBacklog", "pod": "a"},
                         "annotations": {"summary": "queue growing"}}])
        alerts = am.alerts()
        assert [a["labels"]["alertname"] for a in alerts] == ["VLLMQueueBacklog"]
        listed = requests.get(am.url + "/api/v2/alerts", timeout=5).json()
        assert listed[0]["annotations"]["summary"] == "queue growing"
        pid = am.pid
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_missing_binary_names_it_and_setup(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match=r"prometheus not found.*make setup"):
        LocalPrometheus().start()
    with pytest.raises(RuntimeError, match=r"prometheus-alertmanager not found.*make setup"):
        LocalAlertmanager(AM_CONFIG).start()


def test_startup_failure_shows_log_tail():
    with pytest.raises(RuntimeError, match="unknown long flag"):
        LocalPrometheus(extra_args=["--no-such-flag"]).start()
