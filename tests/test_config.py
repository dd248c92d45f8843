"""Config loading: every key optional, every mistake reported as file:line: key.path: what is wrong."""
from __future__ import annotations

import textwrap

import pytest

from inferwatch.core.config import BACKENDS, Config, ConfigError, Labels, load_config, parse_config


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(textwrap.dedent(text), "inferwatch.yaml")
    return str(info.value)


def test_no_file_and_empty_file_give_the_defaults():
    assert load_config(None) == Config()
    assert parse_config("", "inferwatch.yaml") == Config()
    assert Config().backends == BACKENDS


def test_a_full_config_is_read_into_typed_values():
    cfg = parse_config(textwrap.dedent("""\
        backends: [vllm, sglang-pd]
        labels: {namespace: pod_namespace, pod: pod_name, cluster: cluster}
        scrape: {namespaces: [llm, chat], port: metrics, interval: 30s}
        recording: {rate_window: 2m, quantiles: [0.5, 0.9, 0.95]}
        gpu: {enabled: false}
        """), "inferwatch.yaml")
    assert cfg.backends == ("vllm", "sglang-pd")
    assert cfg.labels == Labels(namespace="pod_namespace", pod="pod_name", cluster="cluster")
    assert cfg.labels.pod_keys() == ("cluster", "pod_namespace", "workload_name", "backend", "model_name", "role",
                                     "pod_name", "inference_instance")
    assert cfg.scrape.namespaces == ("llm", "chat") and cfg.scrape.port == "metrics"
    assert cfg.scrape.interval.seconds() == 30
    assert cfg.recording.rate_window.seconds() == 120 and cfg.recording.quantiles == (0.5, 0.9, 0.95)
    assert cfg.gpu.enabled is False


@pytest.mark.parametrize("text, prefix, detail", [
    # unknown key, at any depth
    ("scrape:\n  intervall: 30s\n", "inferwatch.yaml:2: scrape.intervall:", "unknown key; valid keys here: name,"),
    ("labelz: {}\n", "inferwatch.yaml:1: labelz:", "unknown key"),
    # wrong type
    ("gpu:\n  enabled: yes please\n", "inferwatch.yaml:2: gpu.enabled:", "expected true or false, got 'yes please'"),
    ("scrape:\n  namespaces: llm\n", "inferwatch.yaml:2: scrape.namespaces:", "expected a list, got 'llm'"),
    ("recording:\n  quantiles: [0.5, fast]\n", "inferwatch.yaml:2: recording.quantiles[1]:",
     "expected a number, got 'fast'"),
    ("labels: [namespace]\n", "inferwatch.yaml:1: labels:", "expected a mapping, got a list"),
    # bad duration
    ("recording:\n  rate_window: 5 minutes\n", "inferwatch.yaml:2: recording.rate_window:",
     "expected a duration like 30s, 5m or 1h30m (units largest first), got '5 minutes'"),
    ("scrape: {interval: 15}\n", "inferwatch.yaml:1: scrape.interval:", "expected a duration"),
    # bad label name
    ("labels:\n  pod: pod-name\n", "inferwatch.yaml:2: labels.pod:", "expected a label name"),
    # unknown backend and other cross-field checks of Config.validate(): they name the line too
    ("backends:\n  - vllm\n  - tgi\n", "inferwatch.yaml:3: backends[1]:", "unknown backend 'tgi'; known: vllm,"),
    ("backends: [vllm, sglang, vllm]\n", "inferwatch.yaml:1: backends[2]:", "'vllm' is listed twice"),
    ("recording:\n  quantiles:\n    - 0.5\n    - 99\n", "inferwatch.yaml:4: recording.quantiles[1]:",
     "99.0 is not between 0 and 1"),
    ("recording:\n  model_histograms: [ttft_seconds, ttft]\n", "inferwatch.yaml:2: recording.model_histograms[1]:",
     "'ttft' is not a histogram; known: ttft_seconds,"),
    ("labels:\n  cluster: my cluster\n", "inferwatch.yaml:2: labels.cluster:", "is not a valid label name"),
    ("labels:\n  namespace: pod\n", "inferwatch.yaml:1: labels:", "two roles use the same label name"),
    ("gpu:\n  info_interval: 5m\n", "inferwatch.yaml:2: gpu.info_interval:", "shorter than 5m"),
    ("recording:\n  histogram_interval: 5m\n", "inferwatch.yaml:2: recording.histogram_interval:", "shorter than 5m"),
    ("recording: {interval: 1m}\ngpu: {info_interval: 30s}\n", "inferwatch.yaml:2: gpu.info_interval:",
     "at least recording.interval (1m)"),
    # duplicate keys and broken YAML
    ("gpu: {enabled: true}\ngpu: {enabled: false}\n", "inferwatch.yaml:2: gpu:", "key given twice"),
    ("scrape: {port: [\n", "inferwatch.yaml:2:", "not valid YAML"),
])
def test_errors_name_file_line_and_key_path(text, prefix, detail):
    message = error_of(text)
    assert message.startswith(prefix + " ") or message.startswith(prefix), message
    assert detail in message, message


def test_an_unreadable_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"missing\.yaml: cannot read config"):
        load_config(tmp_path / "missing.yaml")


def test_ack_label_names_change_every_key_set():
    lb = parse_config("labels: {namespace: pod_namespace, pod: pod_name}\n").labels
    assert lb.join_keys() == ("pod_namespace", "pod_name")
    assert "pod_name" not in lb.model_keys() and "model_name" not in lb.pod_identity()
