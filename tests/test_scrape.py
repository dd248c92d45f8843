"""Scrape objects: the PodMonitor and the plain scrape config select the inference pods and label them.

The plain config is checked by `promtool check config`, and its relabelling is run by a real Prometheus:
static targets carrying the `__meta_kubernetes_*` labels Kubernetes discovery would attach stand in for
pods, and the targets API shows which were kept and with which labels.
"""
from __future__ import annotations

import subprocess
import time

import pytest
import requests
import yaml

from inferwatch.sandbox.localprom import LocalPrometheus
from inferwatch.core.config import Config, Labels, Scrape, parse_config
from inferwatch.core.rules import dump_yaml
from inferwatch.generate.scrape import artifacts, meta_label, pod_monitor, scrape_config, target_relabels

WORKLOAD = "alibabacloud.com/inference-workload"
ROLE = "rolebasedgroup.workloads.x-k8s.io/role"


def relabel_pairs(endpoint_relabelings: list[dict]) -> list[tuple[str, str]]:
    """(source, target) of the one-label relabelings; the instance ones are tested on their own."""
    return [(r["sourceLabels"][0], r["targetLabel"]) for r in endpoint_relabelings
            if r["targetLabel"] != "inference_instance"]


def test_pod_monitor_selects_workload_pods_on_the_configured_endpoint():
    pm = pod_monitor(Config())
    assert (pm["apiVersion"], pm["kind"]) == ("monitoring.coreos.com/v1", "PodMonitor")
    assert pm["metadata"]["namespace"] == "monitoring"
    assert pm["spec"]["selector"] == {"matchExpressions": [{"key": WORKLOAD, "operator": "Exists"}]}
    assert pm["spec"]["namespaceSelector"] == {"any": True}
    (endpoint,) = pm["spec"]["podMetricsEndpoints"]
    assert (endpoint["port"], endpoint["path"], endpoint["interval"]) == ("http", "/metrics", "15s")
    assert relabel_pairs(endpoint["relabelings"]) == [
        (meta_label(WORKLOAD), "workload_name"),
        (meta_label("alibabacloud.com/inference-backend"), "backend"),
        (meta_label(ROLE), "role"),
    ]
    assert all(r["regex"] == "(.+)" and r["action"] == "replace" for r in endpoint["relabelings"]
               if r["targetLabel"] != "inference_instance")


def test_both_backend_label_spellings_reach_one_meta_label():
    """Kubernetes discovery sanitises `-` and `.` to `_`: one relabeling serves both spellings."""
    dash, underscore = meta_label("alibabacloud.com/inference-backend"), meta_label("alibabacloud.com/inference_backend")
    assert dash == underscore == "__meta_kubernetes_pod_label_alibabacloud_com_inference_backend"
    assert Scrape().backend_pod_labels == ("alibabacloud.com/inference-backend", "alibabacloud.com/inference_backend")


def test_configured_namespaces_port_path_interval_and_labels():
    cfg = parse_config("""
scrape:
  namespaces: [llm, chat]
  port: metrics
  path: /v1/metrics
  interval: 30s
  monitor_labels: {release: kube-prometheus-stack}
  backend_pod_labels: [example.com/engine, example.com/backend]
labels: {namespace: pod_namespace, pod: pod_name, role: rbg_role}
""")
    pm = pod_monitor(cfg)
    assert pm["spec"]["namespaceSelector"] == {"matchNames": ["llm", "chat"]}
    assert pm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    (endpoint,) = pm["spec"]["podMetricsEndpoints"]
    assert (endpoint["port"], endpoint["path"], endpoint["interval"]) == ("metrics", "/v1/metrics", "30s")
    # Lowest priority first, so the first listed backend label is applied last and wins.
    assert relabel_pairs(endpoint["relabelings"]) == [
        (meta_label(WORKLOAD), "workload_name"),
        ("__meta_kubernetes_pod_label_example_com_backend", "backend"),
        ("__meta_kubernetes_pod_label_example_com_engine", "backend"),
        (meta_label(ROLE), "rbg_role"),
        ("__meta_kubernetes_namespace", "pod_namespace"),
        ("__meta_kubernetes_pod_name", "pod_name"),
    ]
    job = scrape_config(cfg)["scrape_configs"][0]
    assert job["kubernetes_sd_configs"] == [{"role": "pod", "namespaces": {"names": ["llm", "chat"]}}]
    assert (job["metrics_path"], job["scrape_interval"]) == ("/v1/metrics", "30s")
    assert {"source_labels": ["__meta_kubernetes_pod_container_port_name"], "regex": "metrics",
            "action": "keep"} in job["relabel_configs"]


def test_plain_and_operator_relabelings_agree():
    cfg = Config(labels=Labels(namespace="pod_namespace", pod="pod_name"))
    job = scrape_config(cfg)["scrape_configs"][0]
    plain = [(r["source_labels"][0], r["target_label"]) for r in job["relabel_configs"]
             if r.get("action") == "replace" and r["target_label"] != "inference_instance"]
    assert plain == target_relabels(cfg) == relabel_pairs(pod_monitor(cfg)["spec"]["podMetricsEndpoints"][0]["relabelings"])


def promtool_check_config(path) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", "check", "config", str(path)], capture_output=True, text=True, timeout=60)


def kubernetes_sd_compiled_in(tmp_path) -> bool:
    """Debian's prometheus 2.42 is built without Kubernetes service discovery (the field is unknown)."""
    probe = tmp_path / "probe.yml"
    probe.write_text("scrape_configs:\n- job_name: probe\n  kubernetes_sd_configs:\n  - role: pod\n")
    res = promtool_check_config(probe)
    return "field kubernetes_sd_configs not found" not in res.stdout + res.stderr


@pytest.mark.parametrize("config_text", ["", "scrape: {namespaces: [llm], port: metrics, interval: 1m}\n"
                                             "labels: {namespace: pod_namespace, pod: pod_name}\n"])
def test_plain_scrape_config_passes_promtool(tmp_path, config_text):
    body = yaml.safe_load(artifacts(parse_config(config_text))["prometheus/scrape-config.yaml"])
    if not kubernetes_sd_compiled_in(tmp_path):
        # Check everything else (job, relabel_configs) with a discovery this build knows.
        for job in body["scrape_configs"]:
            assert job.pop("kubernetes_sd_configs")[0]["role"] == "pod"
            job["file_sd_configs"] = [{"files": ["targets/*.json"]}]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({"global": {"scrape_interval": "15s"}, **body}))
    res = promtool_check_config(tmp_path / "prometheus.yml")
    assert res.returncode == 0, res.stdout + res.stderr


def pod_target(name: str, **meta: str) -> dict:
    """A static target carrying the labels Kubernetes pod discovery would attach."""
    labels = {"__meta_kubernetes_namespace": "llm", "__meta_kubernetes_pod_name": name,
              "__meta_kubernetes_pod_container_name": "engine", "__meta_kubernetes_pod_container_port_name": "http"}
    labels.update(meta)
    return {"targets": [f"127.0.0.1:{9 + len(name)}"], "labels": labels}


def test_real_prometheus_relabels_pods_as_documented(tmp_path):
    """Both backend spellings, the role, the workload; pods without the workload label or port are dropped."""
    wl, present = meta_label(WORKLOAD), meta_label(WORKLOAD).replace("_label_", "_labelpresent_", 1)
    backend = meta_label("alibabacloud.com/inference-backend")
    lws, lws_index = meta_label("leaderworkerset.sigs.k8s.io/name"), meta_label("leaderworkerset.sigs.k8s.io/group-index")
    rbg = meta_label("rolebasedgroup.workloads.x-k8s.io/group-unique-key")
    targets = [
        pod_target("chat-0", **{present: "true", wl: "chat", backend: "vllm"}),
        pod_target("chat-pd-0", **{present: "true", wl: "chat-pd", backend: "sglang-pd", meta_label(ROLE): "prefill"}),
        pod_target("bare", **{present: "true", wl: "bare"}),                # scraped without a backend label
        pod_target("other", **{backend: "vllm"}),                           # no workload label: dropped
        # a LeaderWorkerSet group (leader and worker share the instance) inside a RoleBasedGroup
        pod_target("big-0", **{present: "true", wl: "big", backend: "vllm", lws: "big", lws_index: "0",
                               rbg: "grp-7"}),
        pod_target("big-0-1", **{present: "true", wl: "big", backend: "vllm", lws: "big", lws_index: "0",
                                 rbg: "grp-7"}),
        pod_target("rbg-only", **{present: "true", wl: "big", rbg: "grp-9"}),
        pod_target("grpc-only", **{present: "true", wl: "chat", "__meta_kubernetes_pod_container_port_name": "grpc"}),
    ]
    job = scrape_config(Config())["scrape_configs"][0]
    job = {k: v for k, v in job.items() if k != "kubernetes_sd_configs"} | {"static_configs": targets}
    with LocalPrometheus(workdir=tmp_path) as prom:
        (tmp_path / "prometheus.yml").write_text(dump_yaml({"scrape_configs": [job]}))
        prom.reload()
        active = wait_for_targets(prom.url, 6)
    got = {t["labels"]["pod"]: t["labels"] for t in active}
    assert set(got) == {"chat-0", "chat-pd-0", "bare", "big-0", "big-0-1", "rbg-only"}
    instance = {pod: labels["inference_instance"] for pod, labels in got.items()}
    assert instance == {"chat-0": "chat-0", "chat-pd-0": "chat-pd-0", "bare": "bare", "big-0": "big-0",
                        "big-0-1": "big-0", "rbg-only": "grp-9"}
    assert {k: got["chat-0"][k] for k in ("namespace", "workload_name", "backend", "container")} == {
        "namespace": "llm", "workload_name": "chat", "backend": "vllm", "container": "engine"}
    assert (got["chat-pd-0"]["backend"], got["chat-pd-0"]["role"]) == ("sglang-pd", "prefill")
    assert "backend" not in got["bare"] and "role" not in got["chat-0"]


def wait_for_targets(url: str, count: int, timeout: float = 20.0) -> list[dict]:
    """Active targets once discovery has delivered `count` of them (the scrape manager batches updates)."""
    deadline = time.monotonic() + timeout
    while True:
        active = requests.get(url + "/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
        if len(active) >= count or time.monotonic() > deadline:
            return active
        time.sleep(0.2)
