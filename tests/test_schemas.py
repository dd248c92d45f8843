"""Every generated Kubernetes object passes the schema the API server checks it against.

Prometheus Operator objects (PrometheusRule, PodMonitor, ServiceMonitor) are validated against the CRDs of
Prometheus Operator v0.93.0 kept beside the repository (../shared/reference/crds); core objects (Deployment,
Service, ConfigMap) against Kubernetes' own OpenAPI schemas, shipped offline by `kubernetes-validate`, for the
oldest and newest Kubernetes it ships. Validation is strict, like `kubectl apply` (server-side field
validation): a field the schema does not know is an error. A deliberately broken object fails each check.
"""
from __future__ import annotations

import copy
from functools import cache
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from inferwatch.core.config import Config
from inferwatch.generate.writer import render

REPO = Path(__file__).resolve().parent.parent
CRDS = REPO.parent / "shared" / "reference" / "crds"
OPERATOR_KINDS = {"PrometheusRule": "prometheusrules", "PodMonitor": "podmonitors",
                  "ServiceMonitor": "servicemonitors", "AlertmanagerConfig": "alertmanagerconfigs"}
CORE_KINDS = {"Deployment", "Service", "ConfigMap"}
KUBERNETES = ("1.25.0", kubernetes_validate.latest_version())  # oldest and newest schemas the package ships


def generated() -> list[tuple[str, dict]]:
    """(path, object) for every Kubernetes object `inferwatch generate` writes for the defaults."""
    out = []
    for path, text in render(Config()).items():
        if path.endswith(".yaml") and path.split("/")[0] in ("kubernetes", "receiver"):
            out += [(path, obj) for obj in yaml.safe_load_all(text) if obj]
    return out


OBJECTS = generated()


@cache
def crd_validator(kind: str) -> jsonschema.Validator:
    if not CRDS.is_dir():
        pytest.skip(f"Prometheus Operator CRDs not found at {CRDS} (shared/ must sit beside the checkout)")
    crd = yaml.safe_load((CRDS / f"monitoring.coreos.com_{OPERATOR_KINDS[kind]}.yaml").read_text())
    [version] = [v for v in crd["spec"]["versions"] if v.get("storage")]
    schema = strict(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
    return jsonschema.Draft7Validator(schema)


def strict(schema: dict) -> dict:
    """An object schema with `properties` rejects other fields, unless it preserves unknown fields: what
    the API server's strict field validation does with a structural CRD schema."""
    if isinstance(schema, dict):
        if ("properties" in schema and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            schema["additionalProperties"] = False
        for value in schema.values():
            if isinstance(value, dict):
                strict(value)
            elif isinstance(value, list):
                for item in value:
                    strict(item)
    return schema


def crd_errors(obj: dict) -> list[str]:
    body = {k: v for k, v in obj.items() if k != "metadata"}  # the CRD leaves metadata to the API server
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
            for e in crd_validator(obj["kind"]).iter_errors(body)]


def core_errors(obj: dict) -> list[str]:
    errors = []
    for version in KUBERNETES:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"Kubernetes {version}: {'.'.join(map(str, exc.path))}: {exc.message}")
    return errors


def test_every_generated_object_has_a_schema_check():
    kinds = {obj["kind"] for _, obj in OBJECTS}
    assert kinds <= set(OPERATOR_KINDS) | CORE_KINDS, kinds
    assert {"PrometheusRule", "PodMonitor", "ServiceMonitor", "Deployment", "Service", "ConfigMap"} <= kinds


@pytest.mark.parametrize("path,obj", [o for o in OBJECTS if o[1]["kind"] in OPERATOR_KINDS],
                         ids=[p for p, o in OBJECTS if o["kind"] in OPERATOR_KINDS])
def test_operator_objects_match_the_crd_schemas(path, obj):
    assert obj["apiVersion"] == "monitoring.coreos.com/v1"
    assert crd_errors(obj) == []


@pytest.mark.parametrize("path,obj", [o for o in OBJECTS if o[1]["kind"] in CORE_KINDS],
                         ids=[p for p, o in OBJECTS if o["kind"] in CORE_KINDS])
def test_core_objects_match_the_kubernetes_schemas(path, obj):
    assert core_errors(obj) == []


def first(kind: str) -> dict:
    return copy.deepcopy(next(obj for _, obj in OBJECTS if obj["kind"] == kind))


def broken_rule() -> dict:
    obj = first("PrometheusRule")
    obj["spec"]["groups"][0]["rules"][0]["for"] = "5 minutes"  # not a Prometheus duration
    return obj


def broken_pod_monitor() -> dict:
    obj = first("PodMonitor")
    obj["spec"]["podMetricsEndpoints"][0]["relabellings"] = []  # misspelt: the Operator would drop it
    return obj


def broken_service_monitor() -> dict:
    obj = first("ServiceMonitor")
    obj["spec"]["endpoints"][0]["scheme"] = "gopher"
    return obj


def broken_deployment() -> dict:
    obj = first("Deployment")
    obj["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFS"] = True
    return obj


def broken_service() -> dict:
    obj = first("Service")
    obj["spec"]["ports"][0]["port"] = "http"  # a port number is an integer
    return obj


def broken_config_map() -> dict:
    obj = first("ConfigMap")
    obj["data"] = {"inferwatch.yaml": {"labels": {}}}  # ConfigMap data values are strings
    return obj


@pytest.mark.parametrize("make,check,expected", [
    (broken_rule, crd_errors, "spec.groups.0.rules.0.for: '5 minutes' does not match"),
    (broken_pod_monitor, crd_errors, "'relabellings' was unexpected"),
    (broken_service_monitor, crd_errors, "spec.endpoints.0.scheme: 'gopher' is not one of"),
    (broken_deployment, core_errors, "'readOnlyRootFS' was unexpected"),
    (broken_service, core_errors, "spec.ports.0.port: 'http' is not of type 'integer'"),
    (broken_config_map, core_errors, "data.inferwatch.yaml: {'labels': {}} is not of type 'string'"),
], ids=["PrometheusRule", "PodMonitor", "ServiceMonitor", "Deployment", "Service", "ConfigMap"])
def test_a_broken_object_fails_its_check(make, check, expected):
    errors = check(make())
    assert errors and any(expected in e for e in errors), errors
