"""The receiver's manifests and image recipe: the objects agree with each other and with the routing, secrets
are referenced and never inlined, and the Containerfile's entrypoint with the Deployment's arguments runs from
the built wheel in a fresh virtualenv (offline) and answers /healthz, /metrics and an alert."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import requests
import yaml

from inferwatch.core.config import Config, parse_config
from inferwatch.generate import receiver, routing
from inferwatch.sandbox.localprom import free_port

REPO = Path(__file__).resolve().parent.parent
SECRETS = textwrap.dedent("""\
    receiver:
      secret: diag-creds
      bearer_token_key: token
      slack_url_key: slack
      shutdown_grace: 20s
    """)


def container(cfg: Config) -> dict:
    return receiver.deployment(cfg)["spec"]["template"]["spec"]["containers"][0]


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_deployment_is_locked_down_probed_and_drains_within_its_grace():
    dep = receiver.deployment(Config())
    pod = dep["spec"]["template"]["spec"]
    c = container(Config())
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert set(c["resources"]) == {"requests", "limits"} and all(c["resources"][k] for k in ("requests", "limits"))
    port = {p["name"]: p["containerPort"] for p in c["ports"]}
    for probe in (c["readinessProbe"], c["livenessProbe"]):
        assert probe["httpGet"]["path"] == "/healthz" and probe["httpGet"]["port"] in port
    grace = float(option(c["args"], "--shutdown-grace"))
    assert grace == 30 and grace < pod["terminationGracePeriodSeconds"] <= grace + 10
    slow = parse_config("receiver: {shutdown_grace: 2m}")
    assert receiver.deployment(slow)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > 120
    # Writable places are volumes: the reports folder the receiver is told to use, and /tmp.
    mounts = {m["mountPath"] for m in c["volumeMounts"] if not m.get("readOnly")}
    assert option(c["args"], "--markdown-dir") in mounts and "/tmp" in mounts


def test_service_monitor_and_alertmanager_reach_the_pods():
    cfg = Config()
    pod_labels = receiver.deployment(cfg)["spec"]["template"]["metadata"]["labels"]
    svc, mon = receiver.service(cfg), receiver.service_monitor(cfg)
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    port_names = {p["name"] for p in container(cfg)["ports"]}
    assert svc["spec"]["ports"][0]["targetPort"] in port_names
    assert mon["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert mon["spec"]["endpoints"][0]["port"] == svc["spec"]["ports"][0]["name"]
    assert mon["spec"]["endpoints"][0]["path"] == "/metrics"
    assert mon["spec"]["namespaceSelector"]["matchNames"] == [svc["metadata"]["namespace"]]
    # The diagnose receiver in the generated routing posts to that Service.
    url = f"http://{svc['metadata']['name']}.{svc['metadata']['namespace']}.svc:{svc['spec']['ports'][0]['port']}/alerts"
    routes = yaml.safe_load((REPO / "rules" / routing.ROUTES_FILE).read_text())
    diag = next(r for r in routes["receivers"] if r["name"] == cfg.routing.diagnose_receiver)
    assert diag["webhook_configs"][0]["url"] == url
    moved = parse_config("receiver: {name: diag, namespace: ops, port: 8080}")
    assert receiver.diagnose_url(moved) == "http://diag.ops.svc:8080/alerts"
    assert "http://diag.ops.svc:8080/alerts" in routing.fragment(moved)
    assert receiver.diagnose_url(parse_config("routing: {diagnose_url: 'https://x.example/alerts'}")) == \
        "https://x.example/alerts"


def test_config_map_holds_the_effective_config_and_the_pods_roll_when_it_changes():
    cfg = parse_config("labels: {namespace: pod_namespace}\nreceiver: {namespace: ops}")
    cm = receiver.config_map(cfg)
    assert parse_config(cm["data"]["inferwatch.yaml"]) == cfg
    volume = next(v for v in receiver.deployment(cfg)["spec"]["template"]["spec"]["volumes"] if v["name"] == "config")
    assert volume["configMap"]["name"] == cm["metadata"]["name"]
    assert option(container(cfg)["args"], "--config").endswith("/inferwatch.yaml")
    annotations = lambda c: receiver.deployment(c)["spec"]["template"]["metadata"]["annotations"]  # noqa: E731
    assert annotations(cfg) != annotations(Config())


def test_credentials_are_secret_references_never_values():
    cfg = parse_config(SECRETS)
    c = container(cfg)
    [volume] = [v for v in receiver.deployment(cfg)["spec"]["template"]["spec"]["volumes"] if "secret" in v]
    assert volume["secret"]["secretName"] == "diag-creds"
    assert {i["key"] for i in volume["secret"]["items"]} == {"token", "slack"}
    mount = next(m["mountPath"] for m in c["volumeMounts"] if m["name"] == volume["name"])
    assert option(c["args"], "--bearer-token-file") == f"{mount}/token"
    basic = container(parse_config("receiver: {secret: diag-creds, username: inferwatch, password_key: pw}"))
    assert option(basic["args"], "--password-file") == f"{mount}/pw"
    assert option(c["args"], "--slack-url-file") == f"{mount}/slack"
    assert "env" not in c and not any(a.startswith(("--slack-url=", "--bearer-token-env")) for a in c["args"])
    assert "--slack-url" not in c["args"]
    assert not [v for v in receiver.deployment(Config())["spec"]["template"]["spec"]["volumes"] if "secret" in v]


# ---- the wheel in a fresh virtualenv runs the Containerfile's entrypoint --------------------------------

def containerfile() -> tuple[list[str], list[str]]:
    """ENTRYPOINT and CMD of the Containerfile (exec form)."""
    found = {}
    for line in (REPO / "Containerfile").read_text().splitlines():
        word, _, rest = line.partition(" ")
        if word in ("ENTRYPOINT", "CMD"):
            found[word] = json.loads(rest)
    return found["ENTRYPOINT"], found["CMD"]


def test_the_containerfile_entrypoint_runs_the_deployment_from_the_wheel(wheel_venv, scenario_prometheus, tmp_path):
    entrypoint, cmd = containerfile()
    assert entrypoint == ["inferwatch", "serve"] and option(cmd, "--listen") == "0.0.0.0:9095"
    cfg = parse_config(SECRETS)
    c = container(cfg)
    # The pod's files: the ConfigMap and the Secret's keys at their mount paths, under tmp_path.
    files = {m["mountPath"]: tmp_path / m["name"] for m in c["volumeMounts"]}
    for d in files.values():
        d.mkdir()
    (files[receiver.CONFIG_DIR] / "inferwatch.yaml").write_text(receiver.config_map(cfg)["data"]["inferwatch.yaml"])
    chat = tmp_path / "secret" / "slack"
    (tmp_path / "secret" / "token").write_text("t0ken\n")
    (tmp_path / "secret" / "pw").write_text("pa55\n")
    chat.write_text("http://127.0.0.1:9/hook\n")  # nothing listens: the sink fails, the others still deliver
    port = free_port()
    args = []
    for a in c["args"]:
        mount = next((m for m in files if a.startswith(m + "/") or a == m), None)
        args.append(str(files[mount]) + a[len(mount):] if mount else a)
    args[args.index("--listen") + 1] = f"127.0.0.1:{port}"  # loopback only in tests
    args[args.index("--prometheus") + 1] = scenario_prometheus("vllm-kv-cache-pressure").url
    proc = subprocess.Popen([str(wheel_venv / "bin" / entrypoint[0]), *entrypoint[1:], *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        from test_webhook import _healthy, payload, wait_for
        wait_for(lambda: _healthy(url) or proc.poll() is not None, timeout=30, what="serve from the wheel")
        assert proc.poll() is None, proc.communicate()[1]
        assert requests.get(url + "/healthz", timeout=5).json() == {"status": "ok"}
        assert "inferwatch_webhook_diagnosed_total 0" in requests.get(url + "/metrics", timeout=5).text
        assert requests.post(url + "/alerts", json=payload(), timeout=5).status_code == 202
        [md] = wait_for(lambda: list(files[receiver.REPORT_DIR].glob("*.md")), timeout=60, what="a report")
        assert "kv_cache_pressure" in md.read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(float(option(c["args"], "--shutdown-grace"))) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    _, stderr = proc.communicate()
    assert "Traceback" not in stderr
    for secret in ("t0ken", "pa55", "127.0.0.1:9/hook"):
        assert secret not in stderr


def test_a_slack_url_file_that_holds_no_url_is_named_and_never_echoed(tmp_path):
    secret = tmp_path / "slack"
    secret.write_text("hooks-SECRET-value\n")
    res = subprocess.run([sys.executable, "-m", "inferwatch.cli", "serve", "--prometheus", "http://127.0.0.1:9",
                          "--slack-url-file", str(secret)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and f"--slack-url-file {secret}: does not hold an http(s):// URL" in res.stderr
    assert "SECRET" not in res.stderr and "Traceback" not in res.stderr


@pytest.mark.parametrize("text,message", [
    ("receiver: {name: Inferwatch_Diagnose}", "inferwatch.yaml:1: receiver.name: 'Inferwatch_Diagnose' is not"),
    ("receiver:\n  memory_limit: 512MB", "inferwatch.yaml:2: receiver.memory_limit: '512MB' is not a Kubernetes"),
    ("receiver: {port: 70000}", "receiver.port: 70000 is not a TCP port"),
    ("receiver: {prometheus_url: 'prometheus:9090'}", "receiver.prometheus_url: 'prometheus:9090' is not"),
    ("receiver: {username: u, password_key: ''}", "receiver.password_key: basic auth"),
    ("receiver: {username: u, password_key: pw, bearer_token_key: t}", "receiver.username: a bearer token"),
])
def test_receiver_config_mistakes_are_named(text, message):
    from inferwatch.core.config import ConfigError
    with pytest.raises(ConfigError) as info:
        parse_config(text, "inferwatch.yaml")
    assert message in str(info.value)
