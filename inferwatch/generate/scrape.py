"""Scrape objects: which pods Prometheus collects engine metrics from, and the labels they carry.

Pods join when they carry the workload label; the workload label becomes `workload_name`, the backend
label (`inference-backend` or `inference_backend`: Kubernetes service discovery sanitises both to the
same meta label) becomes `backend`, the role label, when present, becomes `role`, and the serving
instance (a LeaderWorkerSet / RoleBasedGroup group, else the pod) becomes `inference_instance`. Emitted as a
Prometheus Operator `PodMonitor` and as an equivalent plain `scrape_configs` entry (kubernetes_sd).
"""
from __future__ import annotations

import re

from ..core.config import Config
from ..core.promql import regex_escape
from ..core.rules import HEADER, dump_yaml


def meta_label(pod_label: str) -> str:
    """Prometheus' name for a pod label: every character outside [a-zA-Z0-9_] becomes `_`."""
    return "__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", pod_label)


def _present(pod_label: str) -> str:
    return meta_label(pod_label).replace("_pod_label_", "_pod_labelpresent_", 1)


def target_relabels(cfg: Config) -> list[tuple[str, str]]:
    """(source meta label, target label), lowest priority first so the first listed wins."""
    lb, sc = cfg.labels, cfg.scrape
    pairs = [(meta_label(sc.workload_pod_label), lb.workload)]
    for labels, target in ((sc.backend_pod_labels, lb.backend), (sc.role_pod_labels, lb.role)):
        metas = list(dict.fromkeys(meta_label(x) for x in labels))  # both spellings -> one meta label
        pairs += [(m, target) for m in reversed(metas)]
    # The Operator attaches `namespace` and `pod`; other names (ACK: pod_namespace, pod_name) are relabelled.
    if lb.namespace != "namespace":
        pairs.append(("__meta_kubernetes_namespace", lb.namespace))
    if lb.pod != "pod":
        pairs.append(("__meta_kubernetes_pod_name", lb.pod))
    return pairs


def instance_relabels(cfg: Config) -> list[dict]:
    """The serving-instance label, lowest priority first: the pod itself, then a group key label, then a
    (group name, group index) pair such as LeaderWorkerSet's `<name>-<group-index>`. A leader and its
    workers share it, so GPUs of worker pods (which export no engine metrics) reach the instance's model
    (core/records.py, GPU tier). Operator field names; `plain_relabel` converts them."""
    sc, dst = cfg.scrape, cfg.labels.instance
    rules = [{"sourceLabels": ["__meta_kubernetes_pod_name"], "targetLabel": dst, "action": "replace"}]
    rules += [{"sourceLabels": [meta_label(x)], "regex": "(.+)", "targetLabel": dst, "replacement": "$1",
               "action": "replace"} for x in reversed(sc.instance_pod_labels)]
    rules += [{"sourceLabels": [meta_label(name), meta_label(index)], "separator": ";", "regex": "(.+);(.+)",
               "targetLabel": dst, "replacement": "$1-$2", "action": "replace"}
              for name, index in reversed(sc.instance_group_pod_labels)]
    return rules


def plain_relabel(rule: dict) -> dict:
    names = {"sourceLabels": "source_labels", "targetLabel": "target_label"}
    return {names.get(k, k): v for k, v in rule.items()}


def pod_monitor(cfg: Config) -> dict:
    sc = cfg.scrape
    relabelings = [{"sourceLabels": [src], "regex": "(.+)", "targetLabel": dst, "replacement": "$1",
                    "action": "replace"} for src, dst in target_relabels(cfg)] + instance_relabels(cfg)
    ns = {"matchNames": list(sc.namespaces)} if sc.namespaces else {"any": True}
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": {"name": sc.name, "namespace": sc.namespace,
                     "labels": {"app.kubernetes.io/name": "inferwatch", **dict(sorted(sc.monitor_labels.items()))}},
        "spec": {
            "selector": {"matchExpressions": [{"key": sc.workload_pod_label, "operator": "Exists"}]},
            "namespaceSelector": ns,
            "podMetricsEndpoints": [{"port": sc.port, "path": sc.path, "interval": str(sc.interval),
                                     "relabelings": relabelings}],
        },
    }


def scrape_config(cfg: Config) -> dict:
    sc = cfg.scrape
    sd: dict = {"role": "pod"}
    if sc.namespaces:
        sd["namespaces"] = {"names": list(sc.namespaces)}
    relabel = [
        {"source_labels": [_present(sc.workload_pod_label)], "regex": "true", "action": "keep"},
        {"source_labels": ["__meta_kubernetes_pod_container_port_name"], "regex": regex_escape(sc.port), "action": "keep"},
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
    ]
    relabel += [{"source_labels": [src], "regex": "(.+)", "target_label": dst, "replacement": "$1",
                 "action": "replace"} for src, dst in target_relabels(cfg)]
    relabel += [plain_relabel(r) for r in instance_relabels(cfg)]
    return {"scrape_configs": [{
        "job_name": sc.name, "scrape_interval": str(sc.interval), "metrics_path": sc.path,
        "kubernetes_sd_configs": [sd], "relabel_configs": relabel,
    }]}


def artifacts(cfg: Config) -> dict[str, str]:
    return {
        "kubernetes/podmonitor.yaml": HEADER + dump_yaml(pod_monitor(cfg)),
        "prometheus/scrape-config.yaml": HEADER + dump_yaml(scrape_config(cfg)),
    }
