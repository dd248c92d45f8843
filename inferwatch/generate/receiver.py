"""The diagnose receiver (`inferwatch serve`) as Kubernetes objects, from the config like every other artifact.

Deployment, Service, ServiceMonitor (the receiver's own /metrics) and a ConfigMap holding the effective
inferwatch.yaml, so the label names the receiver reads from alerts are the ones the rules wrote. Credentials
stay in a Secret the user creates: the Deployment mounts only the keys the config names and passes their
file paths (`--bearer-token-file`, `--password-file`, `--slack-url-file`), so no value is ever in a manifest,
an environment listing or `ps`. The container runs the Containerfile's entrypoint (`inferwatch serve`) with
`args` from here; tests/test_receiver.py runs exactly those arguments against the installed wheel.
"""
from __future__ import annotations

import hashlib

from ..core.config import Config, to_plain
from ..core.rules import HEADER, dump_yaml

FOLDER = "receiver"
CONFIG_DIR = "/etc/inferwatch/config"
SECRET_DIR = "/etc/inferwatch/secret"
REPORT_DIR = "/var/lib/inferwatch/reports"
PORT_NAME = "http"
UID = 65532  # the Containerfile's user; not root, no home directory needed
EXIT_MARGIN_SECONDS = 5  # after the drain: close the server, flush the sinks, exit


def labels(cfg: Config) -> dict[str, str]:
    return {"app.kubernetes.io/name": "inferwatch", "app.kubernetes.io/component": "diagnose-receiver",
            "app.kubernetes.io/instance": cfg.receiver.name}


def service_url(cfg: Config) -> str:
    rc = cfg.receiver
    return f"http://{rc.name}.{rc.namespace}.svc:{rc.port}"


def diagnose_url(cfg: Config) -> str:
    """Where Alertmanager posts: `routing.diagnose_url`, or this receiver's Service when it is empty."""
    return cfg.routing.diagnose_url or service_url(cfg) + "/alerts"


def _metadata(cfg: Config, name: str, extra: dict[str, str] | None = None) -> dict:
    return {"name": name, "namespace": cfg.receiver.namespace, "labels": {**labels(cfg), **(extra or {})}}


def effective_config(cfg: Config) -> str:
    return HEADER + dump_yaml(to_plain(cfg))


def config_map(cfg: Config) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _metadata(cfg, f"{cfg.receiver.name}-config"),
            "data": {"inferwatch.yaml": effective_config(cfg)}}


def secret_keys(cfg: Config) -> dict[str, str]:
    """Option -> Secret key, for the credentials the config asks for."""
    rc = cfg.receiver
    out = {}
    if rc.bearer_token_key:
        out["--bearer-token-file"] = rc.bearer_token_key
    if rc.username:
        out["--password-file"] = rc.password_key
    if rc.slack_url_key:
        out["--slack-url-file"] = rc.slack_url_key
    return out


def container_args(cfg: Config) -> list[str]:
    """The arguments after the Containerfile's `ENTRYPOINT ["inferwatch", "serve"]`."""
    rc = cfg.receiver
    args = ["--listen", f"0.0.0.0:{rc.port}", "--prometheus", rc.prometheus_url,
            "--config", f"{CONFIG_DIR}/inferwatch.yaml", "--jsonl", "-", "--markdown-dir", REPORT_DIR,
            "--public-url", rc.public_url or service_url(cfg),
            "--shutdown-grace", f"{rc.shutdown_grace.seconds():g}"]
    if rc.username:
        args += ["--username", rc.username]
    for option, key in secret_keys(cfg).items():
        args += [option, f"{SECRET_DIR}/{key}"]
    return args


def deployment(cfg: Config) -> dict:
    rc = cfg.receiver
    probe = {"httpGet": {"path": "/healthz", "port": PORT_NAME}, "periodSeconds": 10, "timeoutSeconds": 2}
    mounts = [{"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
              {"name": "reports", "mountPath": REPORT_DIR}, {"name": "tmp", "mountPath": "/tmp"}]
    volumes: list[dict] = [{"name": "config", "configMap": {"name": f"{rc.name}-config"}},
                           {"name": "reports", "emptyDir": {"sizeLimit": "1Gi"}},
                           {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]
    keys = sorted(set(secret_keys(cfg).values()))
    if keys:
        mounts.insert(1, {"name": "secret", "mountPath": SECRET_DIR, "readOnly": True})
        volumes.insert(1, {"name": "secret", "secret": {"secretName": rc.secret, "defaultMode": 0o440,
                                                        "items": [{"key": k, "path": k} for k in keys]}})
    checksum = hashlib.sha256(effective_config(cfg).encode()).hexdigest()[:16]
    container = {
        "name": "serve",
        "image": rc.image,
        "args": container_args(cfg),
        "ports": [{"name": PORT_NAME, "containerPort": rc.port, "protocol": "TCP"}],
        "readinessProbe": {**probe, "initialDelaySeconds": 2},
        "livenessProbe": {**probe, "initialDelaySeconds": 10, "failureThreshold": 3},
        "resources": {"requests": {"cpu": rc.cpu_request, "memory": rc.memory_request},
                      "limits": {"cpu": rc.cpu_limit, "memory": rc.memory_limit}},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": mounts,
    }
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": _metadata(cfg, rc.name),
        "spec": {
            "replicas": 1,  # de-duplication is in memory (docs/webhook.md)
            "selector": {"matchLabels": labels(cfg)},
            "template": {
                "metadata": {"labels": labels(cfg), "annotations": {"inferwatch.dev/config-sha256": checksum}},
                "spec": {
                    "securityContext": {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID, "fsGroup": UID,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "terminationGracePeriodSeconds": int(rc.shutdown_grace.seconds()) + EXIT_MARGIN_SECONDS,
                    "automountServiceAccountToken": False,
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }


def service(cfg: Config) -> dict:
    rc = cfg.receiver
    return {"apiVersion": "v1", "kind": "Service", "metadata": _metadata(cfg, rc.name),
            "spec": {"selector": labels(cfg),
                     "ports": [{"name": PORT_NAME, "port": rc.port, "targetPort": PORT_NAME, "protocol": "TCP"}]}}


def service_monitor(cfg: Config) -> dict:
    rc = cfg.receiver
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
            "metadata": _metadata(cfg, rc.name, dict(sorted(rc.monitor_labels.items()))),
            "spec": {"selector": {"matchLabels": labels(cfg)},
                     "namespaceSelector": {"matchNames": [rc.namespace]},
                     "endpoints": [{"port": PORT_NAME, "path": "/metrics", "interval": str(cfg.scrape.interval)}]}}


def objects(cfg: Config) -> dict[str, dict]:
    """File name -> object, in the order `kubectl apply -f` should create them."""
    return {"configmap.yaml": config_map(cfg), "deployment.yaml": deployment(cfg), "service.yaml": service(cfg),
            "servicemonitor.yaml": service_monitor(cfg)}


def artifacts(cfg: Config) -> dict[str, str]:
    return {f"{FOLDER}/{name}": HEADER + dump_yaml(obj) for name, obj in objects(cfg).items()}
