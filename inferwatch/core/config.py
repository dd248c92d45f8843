"""inferwatch configuration: one place, every key optional, strict validation.

The config is plain frozen dataclasses. `load_config()` reads YAML node by node so every error names the
file, the line and the key path (`alerts.models[2].ttft_seconds: expected a number, got 'fast'`).
Sections for later features (alerts, SLOs, diagnose, routing, dashboards) live here too, so there is one
file to read to know every knob.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import yaml

from .signals import SIGNALS

BACKENDS = ("vllm", "sglang", "vllm-pd", "sglang-pd")
HISTOGRAMS = tuple(s.name for s in SIGNALS if s.kind == "histogram")
# Prometheus's own duration grammar (prometheus/common model.ParseDuration): units largest first, each once.
_DURATION = re.compile(r"^(?=\d)(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_YAML12_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")  # 1e-3 (YAML 1.1 wants 1.0e-3)
# Kubernetes names (apimachinery validation): DNS-1123 labels for namespaces, subdomains for object names,
# qualified names for label keys, IANA service names for container ports.
_K8S_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_K8S_SUBDOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_K8S_KEY_NAME = re.compile(r"^(?=.{1,63}$)[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_K8S_LABEL_VALUE = re.compile(r"^(?=.{0,63}$)([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_PORT_NAME = re.compile(r"^(?=.{1,15}$)(?=.*[a-z])[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# A URL that goes into a Go-template annotation or a config file verbatim: no spaces, quotes or braces.
_SAFE_URL = re.compile(r"^https?://[A-Za-z0-9\-._~:/?#\[\]@!&'()*+,;=%]+$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti|P|Pi|E|Ei)?$")


class ConfigError(ValueError):
    """A config problem, already phrased for the user (file:line: key.path: what is wrong)."""


class Duration(str):
    """A Prometheus duration such as 30s, 5m, 1h30m."""

    def seconds(self) -> float:
        return duration_seconds(self)


class LabelName(str):
    """A Prometheus label name."""


def is_duration(text: object) -> bool:
    """A non-zero Prometheus duration such as 30s, 5m or 1h30m."""
    return isinstance(text, str) and bool(_DURATION.match(text)) and duration_seconds(text) > 0


def duration_seconds(text: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)(ms|s|m|h|d|w|y)", text))


# ---- sections -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Labels:
    """Label names on the scraped series. Defaults match the Prometheus Operator; ACK's relabelled
    targets use `namespace: pod_namespace`, `pod: pod_name`, `role: rbg_role`."""
    namespace: LabelName = LabelName("namespace")
    pod: LabelName = LabelName("pod")
    workload: LabelName = LabelName("workload_name")
    backend: LabelName = LabelName("backend")
    model: LabelName = LabelName("model_name")
    role: LabelName = LabelName("role")
    # The serving instance a pod belongs to (one or more pods: a LeaderWorkerSet / RoleBasedGroup group),
    # set at scrape time (generate/scrape.py); worker pods' GPUs are attributed through it.
    instance: LabelName = LabelName("inference_instance")
    cluster: str = ""  # empty: single cluster; otherwise kept in every aggregation

    def pod_keys(self) -> tuple[str, ...]:
        """Identity of a pod-tier series, in a fixed order. The instance label adds nothing to a pod's
        identity (a pod is in one instance); it is kept so pod views can group a multi-node instance."""
        return tuple(k for k in (self.cluster, self.namespace, self.workload, self.backend, self.model,
                                 self.role, self.pod, self.instance) if k)

    def model_keys(self) -> tuple[str, ...]:
        """Identity of a model-tier series: a model in one workload (prefill and decode kept apart)."""
        return tuple(k for k in self.pod_keys() if k not in (self.pod, self.instance))

    def pod_identity(self) -> tuple[str, ...]:
        """Identity of a pod regardless of the models it serves."""
        return tuple(k for k in self.pod_keys() if k != self.model)

    def join_keys(self) -> tuple[str, ...]:
        """Labels that join GPU series to the pod using the GPU."""
        return tuple(k for k in (self.cluster, self.namespace, self.pod) if k)

    def gpu_keys(self) -> tuple[str, ...]:
        """Identity of a GPU series: the pod using it plus dcgm-exporter's own GPU labels."""
        return tuple(k for k in (self.cluster, self.namespace, self.pod, "hostname", "gpu", "UUID", "modelName") if k)


@dataclass(frozen=True)
class Scrape:
    """Which pods Prometheus scrapes for engine metrics: selector labels, port, path and interval."""
    name: str = "inferwatch-llm-inference"
    namespace: str = "monitoring"  # where the PodMonitor object lives
    namespaces: tuple[str, ...] = ()  # namespaces to scrape; empty = all
    port: str = "http"
    path: str = "/metrics"
    interval: Duration = Duration("15s")
    workload_pod_label: str = "alibabacloud.com/inference-workload"
    backend_pod_labels: tuple[str, ...] = ("alibabacloud.com/inference-backend",
                                           "alibabacloud.com/inference_backend")
    role_pod_labels: tuple[str, ...] = ("rolebasedgroup.workloads.x-k8s.io/role",)
    # A multi-node instance: (group name, group index) pod labels joined as `<name>-<index>`, the first
    # pair a pod carries wins; else `instance_pod_labels`; else the pod is its own instance.
    instance_group_pod_labels: tuple[tuple[str, str], ...] = (
        ("leaderworkerset.sigs.k8s.io/name", "leaderworkerset.sigs.k8s.io/group-index"),)
    instance_pod_labels: tuple[str, ...] = ("rolebasedgroup.workloads.x-k8s.io/group-unique-key",)
    monitor_labels: dict[str, str] = field(default_factory=dict)  # so a Prometheus selects the PodMonitor


@dataclass(frozen=True)
class GPU:
    """dcgm-exporter series and how they name the pod that uses a GPU."""
    enabled: bool = True
    # First label with a value wins: the Helm chart's default (honorLabels: false) puts the workload
    # pod in exported_pod / exported_namespace; honorLabels: true keeps it in pod / namespace.
    namespace_labels: tuple[LabelName, ...] = (LabelName("exported_namespace"), LabelName("namespace"))
    pod_labels: tuple[LabelName, ...] = (LabelName("exported_pod"), LabelName("pod"))
    hostname_labels: tuple[LabelName, ...] = (LabelName("hostname"), LabelName("Hostname"))
    owner_memory: Duration = Duration("10m")  # gaps the remembered GPU -> pod -> model mapping bridges
    # How often that mapping (`llm_gpu:owner:info`, `llm_gpu:info`) is recomputed: it changes only when
    # pods are scheduled, and recomputing it for every GPU each cycle was the GPU tier's largest cost
    # (docs/benchmarks.md). A new pod's GPUs are attributed within this; under Prometheus' 5-minute
    # lookback, so the mapping is always there between evaluations.
    info_interval: Duration = Duration("2m")


@dataclass(frozen=True)
class Recording:
    rate_window: Duration = Duration("5m")
    interval: Duration = Duration("30s")
    quantiles: tuple[float, ...] = (0.5, 0.9, 0.99)
    # Histograms whose model-tier bucket rates, quantiles and means are written (latency SLOs read their
    # buckets over hours, `diagnose` their quantiles for every model); the others, and every pod's, are
    # computed when a panel or diagnosis reads them.
    model_histograms: tuple[str, ...] = ("ttft_seconds", "itl_seconds", "e2e_latency_seconds")
    # How often those histograms' model-tier records (bucket, sum and count rates, quantiles, means) are
    # recomputed: the rules' costliest reads (a bucket series per pod), over 5m windows that move little
    # in 30s. No alert waits on them (the SLO's short windows rate the raw buckets every cycle; its long
    # windows sum these records over 30m and more); panels and `diagnose` see them at most 2m old, within
    # the 5m window they average. Never more often than `interval`.
    histogram_interval: Duration = Duration("2m")


@dataclass(frozen=True)
class Output:
    """How generated objects are packaged."""
    prometheus_rule_namespace: str = "monitoring"
    prometheus_rule_labels: dict[str, str] = field(default_factory=lambda: {"role": "alert-rules"})
    runbook_base_url: str = "https://github.com/inferwatch/inferwatch/blob/main/rules/runbooks"


@dataclass(frozen=True)
class Routing:
    """The Alertmanager fragment: receiver names the user fills in, the diagnose webhook and the timers.
    Receivers are placeholders so the generated file never holds a secret (pager keys, Slack URLs)."""
    diagnose_url: str = ""  # empty: the generated receiver's Service (receiver.name, namespace, port)
    diagnose_receiver: str = "inferwatch-diagnose"
    pager_receiver: str = "inferwatch-pager"
    ticket_receiver: str = "inferwatch-ticket"
    null_receiver: str = "inferwatch-null"
    group_wait: Duration = Duration("30s")
    group_interval: Duration = Duration("5m")
    repeat_interval: Duration = Duration("4h")
    diagnose_group_wait: Duration = Duration("5s")  # diagnosis should be ready when the page arrives


@dataclass(frozen=True)
class Dashboard:
    """The Grafana dashboard and the ConfigMap the Grafana sidecar imports (it watches `labels`)."""
    title: str = "LLM inference (inferwatch)"
    uid: str = "inferwatch-llm-inference"
    namespace: str = "monitoring"  # of the ConfigMap
    labels: dict[str, str] = field(default_factory=lambda: {"grafana_dashboard": "1"})
    folder: str = ""  # `grafana_folder` annotation, for sidecars with folderAnnotation set


@dataclass(frozen=True)
class ReceiverDeploy:
    """`inferwatch serve` in the cluster (generate/receiver.py): Deployment, Service, ServiceMonitor and
    the ConfigMap with this config. Credentials stay in a Secret the user creates (`secret`): the
    manifests name its keys, never a value. An empty key leaves that credential out."""
    name: str = "inferwatch-diagnose"
    namespace: str = "monitoring"
    port: int = 9095
    image: str = "inferwatch:0.1.0"  # built from the repository's Containerfile and pushed by you
    prometheus_url: str = "http://prometheus-operated.monitoring.svc:9090"
    public_url: str = ""  # base URL people open reports under (GET /reports/<id>); empty: the Service's
    secret: str = "inferwatch-diagnose"
    bearer_token_key: str = ""  # Secret key holding a bearer token for Prometheus
    username: str = ""  # basic auth user for Prometheus; the password is Secret key `password_key`
    password_key: str = "password"
    slack_url_key: str = ""  # Secret key holding a Slack-compatible incoming webhook URL
    shutdown_grace: Duration = Duration("30s")  # drain on SIGTERM; the pod gets this plus 10s
    cpu_request: str = "100m"
    memory_request: str = "256Mi"
    cpu_limit: str = "1"
    memory_limit: str = "512Mi"
    monitor_labels: dict[str, str] = field(default_factory=dict)  # so a Prometheus selects the ServiceMonitor


# ---- alerts and SLOs (inferwatch/generate/alerts.py, generators/slo.py) --------------------------------

SLO_KINDS = ("availability", "ttft", "itl", "e2e_latency")


@dataclass(frozen=True)
class BurnWindow:
    """One row of the multi-window, multi-burn-rate table: alert when `budget_percent` of the period's
    error budget would be spent within `long` (checked over `long` and `short`). The burn factor is
    computed from it: budget_percent/100 * period / long (Sloth, SRE workbook)."""
    burn_tier: str = "page-fast"  # page-outage | page-fast | page-slow | ticket-fast | ticket-slow
    budget_percent: float = 2.0
    long: Duration = Duration("1h")
    short: Duration = Duration("5m")
    for_duration: Duration = Duration("2m")


@dataclass(frozen=True)
class Objective:
    """One SLO of a model: `objective_percent` of requests succeed (availability) or finish their TTFT,
    inter-token or end-to-end latency within `threshold_seconds` (a histogram bucket boundary)."""
    enabled: bool = True
    objective_percent: float = 99.0
    threshold_seconds: float = 0.0  # latency SLOs only


@dataclass(frozen=True)
class ObjectiveOverride:
    """Per-model changes to an Objective; an empty field keeps the global value."""
    enabled: bool | None = None
    objective_percent: float | None = None
    threshold_seconds: float | None = None


@dataclass(frozen=True)
class ModelSLO:
    """SLO overrides for the models matching `model` (and `namespace` / `workload` when given)."""
    model: str = ""
    namespace: str = ""
    workload: str = ""
    availability: ObjectiveOverride = field(default_factory=ObjectiveOverride)
    ttft: ObjectiveOverride = field(default_factory=ObjectiveOverride)
    itl: ObjectiveOverride = field(default_factory=ObjectiveOverride)
    e2e_latency: ObjectiveOverride = field(default_factory=ObjectiveOverride)


def _default_windows() -> tuple[BurnWindow, ...]:
    # SRE workbook / Sloth google-30d table; `for` as kubernetes-mixin's apiserver burn-rate alerts.
    # page-outage (ours): a hard outage pages within 3 minutes, one bad minute never does (docs/alerts.md).
    return (BurnWindow("page-outage", 0.25, Duration("5m"), Duration("2m"), Duration("0s")),
            BurnWindow("page-fast", 2.0, Duration("1h"), Duration("5m"), Duration("2m")),
            BurnWindow("page-slow", 5.0, Duration("6h"), Duration("30m"), Duration("15m")),
            BurnWindow("ticket-fast", 10.0, Duration("1d"), Duration("2h"), Duration("1h")),
            BurnWindow("ticket-slow", 10.0, Duration("3d"), Duration("6h"), Duration("3h")))


def _default_error_reasons() -> dict[str, tuple[str, ...]]:
    # vLLM aborts are mostly client cancellations; SGLang reports engine-side failures as aborts too.
    return {"vllm": ("engine_error", "http_5xx"), "vllm-pd": ("engine_error", "http_5xx"),
            "sglang": ("abort", "http_5xx"), "sglang-pd": ("abort", "http_5xx")}


@dataclass(frozen=True)
class SLO:
    """Per-model SLOs turned into multi-window, multi-burn-rate alerts (docs/alerts.md)."""
    period: Duration = Duration("30d")
    windows: tuple[BurnWindow, ...] = field(default_factory=_default_windows)
    min_request_rate: float = 0.05  # requests/s over the long window; quieter models never burn
    threshold_policy: str = "reject"  # reject | snap (to the largest common bucket boundary below)
    error_reasons: dict[str, tuple[str, ...]] = field(default_factory=_default_error_reasons)
    availability: Objective = field(default_factory=lambda: Objective(True, 99.5))
    ttft: Objective = field(default_factory=lambda: Objective(True, 99.0, 1.0))
    itl: Objective = field(default_factory=lambda: Objective(True, 99.0, 0.2))
    e2e_latency: Objective = field(default_factory=lambda: Objective(False, 99.0, 60.0))
    models: tuple[ModelSLO, ...] = ()


@dataclass(frozen=True)
class Alerts:
    """Cause alerts (pod and GPU tier) and the model-absent alert: thresholds, `for`, severities."""
    enabled: bool = True
    severity: dict[str, str] = field(default_factory=dict)  # alert name -> critical | warning | info
    for_durations: dict[str, Duration] = field(default_factory=dict)  # alert name -> `for`
    serving_lookback: Duration = Duration("1h")  # a model that had traffic this recently must keep serving
    replica_lookback: Duration = Duration("1h")  # a model's pod count is held to its settled level this long
    exogenous_baseline: Duration = Duration("1h")  # traffic surge and length shift: the window compared with
    exogenous_skip: Duration = Duration("15m")  # ... ending this long ago, so a shift is not its own baseline
    surge_factor: float = 1.5  # requests/s over this many times the baseline's maximum (and a queue)
    length_factor: float = 2.0  # tokens per request over this many times the baseline's average
    queue_waiting: float = 5.0  # requests waiting in one pod
    queue_time_seconds: float = 1.0  # mean queue time; ignored where the engine does not export it
    kv_cache_usage: float = 0.95  # the fullest of the last `hold` (hysteresis)
    hold: Duration = Duration("3m")  # KV usage, GPU temperature and clock: extreme over this window
    preemption_rate: float = 0.5  # preempted / retracted requests per second in one pod
    prefix_hit_baseline: Duration = Duration("6h")
    prefix_hit_drop: float = 0.5  # alert when the hit ratio falls below (1 - drop) x its baseline
    prefix_hit_min_baseline: float = 0.2  # only for pods whose cache usually hits this often
    imbalance_factor: float = 3.0  # a pod's queue over this many times its siblings' average
    kv_transfer_failure_rate: float = 0.01  # failed or expired KV transfers per second in one pod (3 in 5m)
    spec_accept_drop: float = 0.5  # draft acceptance below (1 - drop) x its baseline (alerts.exogenous_*) ...
    spec_decode_slowdown: float = 0.2  # ... while decode tokens/s per running request fall by this share
    gpu_temperature_celsius: float = 85.0
    gpu_clock_drop: float = 0.2  # SM clock below (1 - drop) x its 1h maximum
    gpu_fb_used_ratio: float = 0.97  # engines preallocate ~0.9; beyond this allocations fail
    gpu_compute_active: float = 0.95
    gpu_idle_active: float = 0.3  # engine activity below this while requests queue = host-bound


@dataclass(frozen=True)
class DiagnoseThresholds:
    """Absolute limits the diagnosis compares with (besides each series' own baseline and its siblings).

    Where an alert tests the same condition (`alerts.*`), the diagnosis' number is the same or more
    sensitive: an alert must stay quiet on a busy healthy pod, the diagnosis looks for what contributes
    to a symptom already confirmed. The pairs are listed in core/failures.py and tested."""
    ttft_seconds: float = 2.0  # model p-quantile TTFT
    itl_seconds: float = 0.2
    e2e_seconds: float = 30.0
    error_ratio: float = 0.05  # failed / finished requests of a model
    waiting_requests: float = 2.0  # requests queued in one pod
    kv_cache_usage: float = 0.9
    preemptions_per_second: float = 0.01
    kv_transfer_failures_per_second: float = 0.01  # failed prefill/decode KV transfers in one pod
    fb_used_ratio: float = 0.97  # engines preallocate ~0.9 of GPU memory; beyond this is pressure
    engine_saturated: float = 0.9  # GPU engine activity (0-1)
    engine_idle: float = 0.35  # activity below this while requests wait = host-bound


@dataclass(frozen=True)
class Diagnose:
    """`diagnose` (docs/diagnose.md): windows, sensitivity, query limits."""
    window: Duration = Duration("15m")  # the incident window, ending at --at
    baseline: Duration = Duration("1h")  # the period before the window a series is compared with
    quantile: float = 0.9  # latency quantile read by the symptoms (one of recording.quantiles)
    points: int = 15  # samples per window: the query step is window / points
    change_factor: float = 1.5  # a series moved when it is this many times its baseline (or 1/x)
    sibling_factor: float = 1.5  # an outlier pod is this many times its siblings' median
    min_persistence: float = 0.3  # share of the window a condition must hold
    query_timeout: Duration = Duration("10s")
    deadline: Duration = Duration("30s")  # for the whole diagnosis
    concurrency: int = 8
    grafana_url: str = ""  # Grafana base URL: HTML reports link every query to Explore there too
    grafana_datasource: str = "prometheus"  # uid of the Prometheus data source in that Grafana
    thresholds: DiagnoseThresholds = field(default_factory=DiagnoseThresholds)


@dataclass(frozen=True)
class Config:
    backends: tuple[str, ...] = BACKENDS
    labels: Labels = field(default_factory=Labels)
    scrape: Scrape = field(default_factory=Scrape)
    gpu: GPU = field(default_factory=GPU)
    recording: Recording = field(default_factory=Recording)
    output: Output = field(default_factory=Output)
    dashboard: Dashboard = field(default_factory=Dashboard)
    routing: Routing = field(default_factory=Routing)
    receiver: ReceiverDeploy = field(default_factory=ReceiverDeploy)
    alerts: Alerts = field(default_factory=Alerts)
    slo: SLO = field(default_factory=SLO)
    diagnose: Diagnose = field(default_factory=Diagnose)

    def validate(self) -> None:
        if not self.backends:
            raise ConfigError("backends: list at least one backend; known: " + ", ".join(BACKENDS))
        for i, b in enumerate(self.backends):
            if b not in BACKENDS:
                raise ConfigError(f"backends[{i}]: unknown backend {b!r}; known: {', '.join(BACKENDS)}")
        for i, b in enumerate(self.backends):
            if b in self.backends[:i]:
                raise ConfigError(f"backends[{i}]: {b!r} is listed twice")
        if not self.recording.quantiles:
            raise ConfigError("recording.quantiles: list at least one quantile")
        for i, q in enumerate(self.recording.quantiles):
            if not 0 < q < 1:
                raise ConfigError(f"recording.quantiles[{i}]: {q} is not between 0 and 1")
        for i, h in enumerate(self.recording.model_histograms):
            if h not in HISTOGRAMS:
                raise ConfigError(f"recording.model_histograms[{i}]: {h!r} is not a histogram; known: "
                                  f"{', '.join(HISTOGRAMS)}")
        if self.labels.cluster and not _LABEL_NAME.match(self.labels.cluster):
            raise ConfigError(f"labels.cluster: {self.labels.cluster!r} is not a valid label name")
        names = [n for n in (self.labels.namespace, self.labels.pod, self.labels.workload,
                             self.labels.backend, self.labels.model, self.labels.role,
                             self.labels.cluster) if n]
        if len(set(names)) != len(names):
            raise ConfigError("labels: two roles use the same label name")
        if not re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", self.dashboard.uid):
            raise ConfigError(f"dashboard.uid: {self.dashboard.uid!r} is not a Grafana uid (1-40 of a-z A-Z 0-9 _ -)")
        receivers = [self.routing.diagnose_receiver, self.routing.pager_receiver,
                     self.routing.ticket_receiver, self.routing.null_receiver]
        if not all(receivers) or len(set(receivers)) != len(receivers):
            raise ConfigError("routing: the four receiver names must be non-empty and different")
        for where, url in (("routing.diagnose_url", self.routing.diagnose_url),
                           ("output.runbook_base_url", self.output.runbook_base_url)):
            if url and (not _SAFE_URL.match(url) or "'" in url):
                raise ConfigError(f"{where}: {url!r} is not an http(s) URL without spaces, quotes or braces "
                                  "(it is written into Go templates and YAML verbatim)")
        self._check_kubernetes()
        self._check_numbers()
        info, each = duration_seconds(self.gpu.info_interval), duration_seconds(self.recording.interval)
        if not duration_seconds(self.recording.histogram_interval) < 300.0:
            raise ConfigError(f"recording.histogram_interval: {self.recording.histogram_interval} must be shorter "
                              "than 5m (Prometheus' lookback)")
        if not each <= info < min(300.0, duration_seconds(self.gpu.owner_memory)):
            raise ConfigError(f"gpu.info_interval: {self.gpu.info_interval} must be at least recording.interval "
                              f"({self.recording.interval}) and shorter than 5m (Prometheus' lookback) and "
                              f"gpu.owner_memory ({self.gpu.owner_memory})")
        rc = self.receiver
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", rc.name):
            raise ConfigError(f"receiver.name: {rc.name!r} is not a Kubernetes Service name (DNS-1035 label)")
        if not 0 < rc.port < 65536:
            raise ConfigError(f"receiver.port: {rc.port} is not a TCP port")
        for key in ("cpu_request", "memory_request", "cpu_limit", "memory_limit"):
            if not _QUANTITY.match(getattr(rc, key)):
                raise ConfigError(f"receiver.{key}: {getattr(rc, key)!r} is not a Kubernetes quantity like 100m or 512Mi")
        if not rc.image or not re.fullmatch(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?", rc.secret):
            raise ConfigError("receiver: image must be set and secret must be a Kubernetes object name")
        if rc.username and rc.bearer_token_key:
            raise ConfigError("receiver.username: a bearer token (receiver.bearer_token_key) is set too; one "
                              "Authorization header reaches Prometheus, so give one of them")
        if rc.username and not rc.password_key:
            raise ConfigError("receiver.password_key: basic auth (receiver.username) needs the Secret key of the password")
        for key, url in (("receiver.prometheus_url", rc.prometheus_url), ("receiver.public_url", rc.public_url),
                         ("diagnose.grafana_url", self.diagnose.grafana_url)):
            if url and not url.startswith(("http://", "https://")):
                raise ConfigError(f"{key}: {url!r} is not an http(s) URL")
        d = self.diagnose
        if d.quantile not in self.recording.quantiles:
            raise ConfigError(f"diagnose.quantile: {d.quantile} is not one of recording.quantiles")
        if d.points < 3 or not 0 < d.min_persistence <= 1 or d.change_factor <= 1 or d.sibling_factor <= 1:
            raise ConfigError("diagnose: points >= 3, 0 < min_persistence <= 1, change/sibling_factor > 1")
        if d.concurrency < 1 or not d.window.seconds() or not d.baseline.seconds():
            raise ConfigError("diagnose: concurrency >= 1 and window, baseline > 0")


    # Durations that must be > 0 (a `for` or a group_wait of 0s is meaningful; these are not).
    POSITIVE_DURATIONS = ("scrape.interval", "recording.rate_window", "recording.interval", "routing.group_interval",
                          "routing.repeat_interval", "alerts.serving_lookback", "alerts.prefix_hit_baseline",
                          "slo.period", "diagnose.window", "diagnose.baseline", "diagnose.query_timeout",
                          "diagnose.deadline")

    def _check_numbers(self) -> None:
        """Durations > 0 where zero breaks a query; thresholds finite and > 0 (NaN and inf are already
        refused by the loader); ratios at most 1."""
        for path in self.POSITIVE_DURATIONS:
            section, key = path.split(".")
            if not duration_seconds(getattr(getattr(self, section), key)) > 0:
                raise ConfigError(f"{path}: must be longer than 0s")
        for i, w in enumerate(self.slo.windows):
            for key in ("long", "short"):
                if not duration_seconds(getattr(w, key)) > 0:
                    raise ConfigError(f"slo.windows[{i}].{key}: must be longer than 0s")
        ratios = {"error_ratio", "kv_cache_usage", "fb_used_ratio", "engine_saturated", "engine_idle"}
        for section, obj in (("alerts", self.alerts), ("diagnose.thresholds", self.diagnose.thresholds)):
            for f in dataclasses.fields(obj):
                value = getattr(obj, f.name)
                if isinstance(value, float) and not value > 0:
                    raise ConfigError(f"{section}.{f.name}: {value} must be above 0")
                if section != "alerts" and f.name in ratios and value > 1:
                    raise ConfigError(f"{section}.{f.name}: {value} must be a ratio in (0, 1]")

    def _check_kubernetes(self) -> None:
        """Names and labels that end up in Kubernetes objects, checked as the API server would."""
        sc, out, dash = self.scrape, self.output, self.dashboard
        for where, ns in [("scrape.namespace", sc.namespace), ("output.prometheus_rule_namespace",
                          out.prometheus_rule_namespace), ("dashboard.namespace", dash.namespace),
                          *((f"scrape.namespaces[{i}]", n) for i, n in enumerate(sc.namespaces))]:
            if not _K8S_LABEL.match(ns):
                raise ConfigError(f"{where}: {ns!r} is not a Kubernetes namespace name (lower-case a-z 0-9 -, "
                                  "at most 63)")
        if not _K8S_SUBDOMAIN.match(sc.name):
            raise ConfigError(f"scrape.name: {sc.name!r} is not a Kubernetes object name (lower-case a-z 0-9 - .)")
        if not _PORT_NAME.match(sc.port):
            raise ConfigError(f"scrape.port: {sc.port!r} is not a container port name (1-15 of a-z 0-9 -, "
                              "with a letter)")
        if not sc.path.startswith("/") or any(c.isspace() for c in sc.path):
            raise ConfigError(f"scrape.path: {sc.path!r} must start with / and hold no spaces")
        keys = [("scrape.workload_pod_label", sc.workload_pod_label),
                *((f"scrape.backend_pod_labels[{i}]", k) for i, k in enumerate(sc.backend_pod_labels)),
                *((f"scrape.role_pod_labels[{i}]", k) for i, k in enumerate(sc.role_pod_labels))]
        for section, labels in (("scrape.monitor_labels", sc.monitor_labels),
                                ("output.prometheus_rule_labels", out.prometheus_rule_labels),
                                ("dashboard.labels", dash.labels)):
            for k, v in labels.items():
                keys.append((f"{section}.{k}", k))
                if not _K8S_LABEL_VALUE.match(v):
                    raise ConfigError(f"{section}.{k}: {v!r} is not a Kubernetes label value")
        for where, key in keys:
            prefix, _, name = key.rpartition("/")
            if (prefix and not _K8S_SUBDOMAIN.match(prefix)) or not _K8S_KEY_NAME.match(name):
                raise ConfigError(f"{where}: {key!r} is not a Kubernetes label key ([prefix/]name)")


# ---- loading ----------------------------------------------------------------------------------

Check = Callable[["Config"], None]


def load_config(path: str | Path | None, checks: Sequence[Check] = ()) -> Config:
    """Defaults when `path` is None; otherwise the file, validated. Raises ConfigError.

    `checks` validate the sections a pipeline reads beyond the core ones (generate passes its SLO and
    alert checks, `inferwatch.generate.writer.CHECKS`); errors carry the file and line all the same."""
    if path is None:
        cfg = Config()
        cfg.validate()
        for check in checks:
            check(cfg)
        return cfg
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from None
    return parse_config(text, str(path), checks)


def parse_config(text: str, source: str = "<config>", checks: Sequence[Check] = ()) -> Config:
    try:
        node = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise ConfigError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if node is None:
        cfg = Config()
    else:
        cfg = _build(Config, node, source, "")
    try:
        cfg.validate()
        for check in checks:
            check(cfg)
    except ConfigError as exc:
        line = _line_of(node, str(exc))
        raise ConfigError(f"{source}:{line}: {exc}" if line else f"{source}: {exc}") from None
    return cfg


_KEY_PATH = re.compile(r"^([A-Za-z_][\w-]*(?:\[\d+\]|\.[A-Za-z_][\w-]*)*): ")


def _line_of(root: yaml.Node | None, message: str) -> int | None:
    """The line of the deepest node on the key path a `validate()` message starts with (`backends[1]: ...`),
    so cross-field errors point into the file like the loader's own errors do."""
    m = _KEY_PATH.match(message)
    if root is None or not m:
        return None
    node, line = root, None
    for key, index in re.findall(r"([A-Za-z_][\w-]*)|\[(\d+)\]", m.group(1)):
        if key and isinstance(node, yaml.MappingNode):
            found = next(((k, v) for k, v in node.value if k.value == key), None)
            if found is None:
                break
            line, node = found[0].start_mark.line + 1, found[1]
        elif index and isinstance(node, yaml.SequenceNode) and int(index) < len(node.value):
            node = node.value[int(index)]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _err(source: str, node: yaml.Node, path: str, msg: str) -> ConfigError:
    return ConfigError(f"{source}:{node.start_mark.line + 1}: {path or '(top level)'}: {msg}")


def _build(tp: Any, node: yaml.Node, source: str, path: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(node, yaml.MappingNode):
            raise _err(source, node, path, f"expected a mapping, got {_kind(node)}")
        hints = _hints(tp)
        fields = {f.name: f for f in dataclasses.fields(tp)}
        values = {}
        for key_node, value_node in node.value:
            key = key_node.value
            sub = f"{path}.{key}" if path else key
            if key not in fields:
                raise _err(source, key_node, sub, f"unknown key; valid keys here: {', '.join(fields)}")
            if key in values:
                raise _err(source, key_node, sub, "key given twice")
            values[key] = _build(hints[key], value_node, source, sub)
        return tp(**values)
    if origin in (typing.Union, types.UnionType):
        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null" and type(None) in args:
            return None
        return _build(next(a for a in args if a is not type(None)), node, source, path)
    if origin is tuple or origin is list:
        if not isinstance(node, yaml.SequenceNode):
            raise _err(source, node, path, f"expected a list, got {_kind(node)}")
        return tuple(_build(args[0], item, source, f"{path}[{i}]") for i, item in enumerate(node.value))
    if origin is dict:
        if not isinstance(node, yaml.MappingNode):
            raise _err(source, node, path, f"expected a mapping, got {_kind(node)}")
        out = {}
        for k, v in node.value:
            out[_build(args[0], k, source, path)] = _build(args[1], v, source, f"{path}.{k.value}")
        return out
    if not isinstance(node, yaml.ScalarNode):
        raise _err(source, node, path, f"expected a single value, got {_kind(node)}")
    value = yaml.safe_load(yaml.serialize(node)) if node.tag != "tag:yaml.org,2002:str" else node.value
    if tp is bool:
        if not isinstance(value, bool):
            raise _err(source, node, path, f"expected true or false, got {node.value!r}")
        return value
    if tp is float and isinstance(value, str) and node.style is None and _YAML12_FLOAT.match(value):
        value = float(value)  # YAML 1.2 floats PyYAML (YAML 1.1) reads as strings: 1e-3, 5E2
    if tp in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (tp is int and isinstance(value, float)):
            raise _err(source, node, path, f"expected {'an integer' if tp is int else 'a number'}, got {node.value!r}")
        if not math.isfinite(value):
            raise _err(source, node, path, f"expected a finite number, got {node.value!r}")
        return tp(value)
    if tp is Duration:
        if not isinstance(value, str) or not _DURATION.match(value):
            raise _err(source, node, path, f"expected a duration like 30s, 5m or 1h30m (units largest first), got {node.value!r}")
        return Duration(value)
    if tp is LabelName:
        if not isinstance(value, str) or not _LABEL_NAME.match(value):
            raise _err(source, node, path, f"expected a label name ([a-zA-Z_][a-zA-Z0-9_]*), got {node.value!r}")
        return LabelName(value)
    if tp is str:
        if isinstance(value, (dict, list)) or value is None:
            raise _err(source, node, path, f"expected a string, got {node.value!r}")
        return str(node.value)
    raise _err(source, node, path, f"unsupported type {tp}")  # pragma: no cover - programming error


@functools.lru_cache(maxsize=None)
def _hints(tp: type) -> dict[str, Any]:
    """A section's field types (cached: evaluating string annotations dominated large configs)."""
    return typing.get_type_hints(tp)


def _kind(node: yaml.Node) -> str:
    return {"MappingNode": "a mapping", "SequenceNode": "a list"}.get(type(node).__name__, repr(node.value))


def to_plain(obj: Any) -> Any:
    """The config as plain data (for `inferwatch config --show` and docs)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple):
        return [to_plain(x) for x in obj]
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, str):
        return str(obj)
    return obj
