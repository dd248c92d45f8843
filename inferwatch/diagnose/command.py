"""`diagnose` / `inferwatch diagnose`: which symptom is real, which pods and GPUs cause it, and why.

Exit codes: 0 healthy, 1 degraded (root causes printed), 2 usage or config error, 3 Prometheus
unreachable (or credentials refused, or a malformed answer), 4 unknown (no inference series in the scope
and time), 5 partial (no symptom found, but some checks failed or did not finish; they are listed).
"""
from __future__ import annotations

import argparse
import math
import os
import time
import sys
from datetime import datetime, timezone
from pathlib import Path

from ..core.config import ConfigError, Duration, load_config

EXIT_HEALTHY, EXIT_DEGRADED, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_UNKNOWN, EXIT_PARTIAL = 0, 1, 2, 3, 4, 5
EXIT_BY_STATUS = {"healthy": EXIT_HEALTHY, "degraded": EXIT_DEGRADED, "unknown": EXIT_UNKNOWN,
                  "partial": EXIT_PARTIAL}

DESCRIPTION = """\
Diagnose an LLM-serving incident from live Prometheus data. Model symptoms (TTFT, inter-token and
end-to-end latency, errors, throughput) are compared with thresholds, with their own baseline before
the window and with sibling pods; the walk then descends a cause graph (queueing, KV cache, prefix
cache, prompt length, batch size, traffic, replicas, GPU faults, throttling, memory, saturation, host
bottleneck) and ranks the root causes by evidence, pods covered and onset order."""

EPILOG = """\
examples:
  diagnose --prometheus http://prometheus:9090 --namespace llm --model Qwen/Qwen2.5-7B-Instruct
  diagnose --prometheus https://thanos.example --at 2026-01-01T01:50:00Z --window 30m --format markdown
  diagnose --prometheus https://mimir.example/prometheus --header 'X-Scope-OrgID: team-a' \\
           --bearer-token-file /var/run/secrets/token --format json
  diagnose --alertmanager http://alertmanager:9093 --filter namespace=llm   # what fires now

exit codes: 0 healthy, 1 degraded, 2 usage/config error, 3 Prometheus (or Alertmanager) unreachable or a
malformed answer, 4 no data, 5 partial (no symptom found, but some checks failed or did not finish;
listed in the output).
Label names (namespace, pod, model_name, ...) and thresholds come from --config (inferwatch.yaml,
section `diagnose:`); see docs/diagnose.md."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--prometheus", metavar="URL", default=os.environ.get("INFERWATCH_PROMETHEUS_URL"),
                   help="query API base URL (Prometheus, Thanos, Mimir, VictoriaMetrics, ARMS); "
                        "default $INFERWATCH_PROMETHEUS_URL")
    scope = p.add_argument_group("scope (all optional; values are matched exactly)")
    scope.add_argument("--namespace")
    scope.add_argument("--workload", help="workload name (label from config labels.workload)")
    scope.add_argument("--model", help="served model name")
    scope.add_argument("--pod", help="narrow causes to one pod")
    scope.add_argument("--cluster", help="cluster label value (needs labels.cluster in the config)")
    when = p.add_argument_group("time")
    when.add_argument("--at", metavar="TIME", help="end of the incident window: RFC 3339 (2026-01-01T01:50:00Z) "
                                                   "or unix seconds; default now")
    when.add_argument("--window", metavar="DURATION", help="incident window before --at (default from config: 15m)")
    p.add_argument("--format", choices=("text", "json", "markdown", "html"), default="text",
                   help="output (default text); html is one self-contained page with a chart per finding")
    p.add_argument("--config", "-c", type=Path, help="inferwatch.yaml (label names, thresholds, query limits)")
    pull = p.add_argument_group("pull mode: diagnose what fires now (instead of scope and time)")
    pull.add_argument("--alertmanager", metavar="URL",
                      help="read active, unsilenced, uninhibited inferwatch alerts from this Alertmanager (v2 API), "
                           "group them as the generated routing does and diagnose each group")
    pull.add_argument("--filter", action="append", default=[], metavar="LABEL=VALUE",
                      help="only alerts with this label value, repeatable (source=... replaces source=inferwatch)")
    pull.add_argument("--report-dir", type=Path, metavar="DIR", help="with --format html: one page per group here")
    add_connection_arguments(p)
    p.set_defaults(func=command)


def add_connection_arguments(p: argparse.ArgumentParser) -> None:
    """Options real clusters need to reach Prometheus; shared by `diagnose` and `serve`."""
    conn = p.add_argument_group("connection (secrets are never printed)")
    conn.add_argument("--bearer-token-file", metavar="PATH", help="file holding a bearer token")
    conn.add_argument("--bearer-token-env", metavar="VAR", help="environment variable holding a bearer token")
    conn.add_argument("--username", help="basic auth user; the password comes from --password-env/--password-file")
    conn.add_argument("--password-env", metavar="VAR", help="environment variable holding the basic auth password")
    conn.add_argument("--password-file", metavar="PATH", help="file holding the basic auth password")
    conn.add_argument("--ca-bundle", metavar="PATH", help="CA certificates to verify the server with")
    conn.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    conn.add_argument("--header", "-H", action="append", default=[], metavar="'NAME: VALUE'",
                      help="extra HTTP header, repeatable (e.g. 'X-Scope-OrgID: tenant')")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("diagnose", help="explain an LLM-serving incident from live Prometheus data",
                       description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)


class UsageError(ValueError):
    pass


MAX_FUTURE = 3600.0  # seconds: an --at further ahead than this is a typo, not an incident


def parse_at(text: str | None) -> datetime | float | None:
    """None (now), or a time between 1970 and an hour from now."""
    if not text:
        return None
    try:
        at: datetime | float = float(text)
        seconds = float(text)
    except ValueError:
        try:
            at = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise UsageError(f"--at: {text!r} is neither RFC 3339 (2026-01-01T01:50:00Z) nor unix seconds") from None
        at = at if at.tzinfo else at.replace(tzinfo=timezone.utc)
        seconds = at.timestamp()
    if not math.isfinite(seconds) or seconds <= 0 or seconds > time.time() + MAX_FUTURE:
        raise UsageError(f"--at: {text!r} is not a time between 1970 and an hour from now")
    return at


def connection(args: argparse.Namespace) -> dict:
    for option, path in (("--bearer-token-file", args.bearer_token_file), ("--ca-bundle", args.ca_bundle)):
        if path and not os.access(path, os.R_OK):
            raise UsageError(f"{option} {path}: not a readable file")
    out: dict = {"ca_bundle": args.ca_bundle, "insecure": args.insecure, "bearer_token_file": args.bearer_token_file}
    if args.bearer_token_env:
        token = os.environ.get(args.bearer_token_env)
        if not token:
            raise UsageError(f"--bearer-token-env: environment variable {args.bearer_token_env} is not set")
        out["bearer_token"] = token
    if args.username is not None:
        out["username"] = args.username
        out["password"] = _password(args)
    elif args.password_env or args.password_file:
        raise UsageError("--password-env/--password-file need --username")
    headers = {}
    for h in args.header:
        name, sep, value = h.partition(":")
        if not sep or not name.strip():
            raise UsageError(f"--header: expected 'Name: value', got {name.strip() or h!r}")
        headers[name.strip()] = value.strip()
    out["headers"] = headers
    return out


def _password(args: argparse.Namespace) -> str:
    if args.password_env:
        value = os.environ.get(args.password_env)
        if value is None:
            raise UsageError(f"--password-env: environment variable {args.password_env} is not set")
        return value
    if args.password_file:
        try:
            return Path(args.password_file).read_text().strip()
        except OSError as exc:
            raise UsageError(f"--password-file {args.password_file}: {exc.strerror}") from None
    return ""


def pull_exit(statuses: list[str]) -> int:
    """Pull mode: 1 when any group is degraded, else 5 when any could not be fully checked, 4 when every
    group has no data, else 0."""
    if "degraded" in statuses:
        return EXIT_DEGRADED
    if "partial" in statuses:
        return EXIT_PARTIAL
    return EXIT_UNKNOWN if statuses and set(statuses) == {"unknown"} else EXIT_HEALTHY


def command(args: argparse.Namespace) -> int:
    from ..core.prometheus import PrometheusError
    from .engine import Scope, run
    from .pull import PullError, command as pull
    try:
        cfg = load_config(args.config)
        if args.alertmanager:
            given = [f"--{k}" for k in ("namespace", "workload", "model", "pod", "cluster", "at") if getattr(args, k)]
            if given:
                raise UsageError(f"--alertmanager takes scope and time from the alerts; drop {', '.join(given)}")
            return pull_exit(pull(args, cfg, connection(args)))
        if args.filter or args.report_dir:
            raise UsageError("--filter and --report-dir need --alertmanager URL")
        if not args.prometheus:
            raise UsageError("--prometheus URL is required (or set INFERWATCH_PROMETHEUS_URL)")
        scope = Scope(namespace=args.namespace, workload=args.workload, model=args.model, pod=args.pod,
                      cluster=args.cluster)
        if args.cluster and not cfg.labels.cluster:
            raise UsageError("--cluster needs labels.cluster in the config (the name of the cluster label)")
        report = run(args.prometheus, scope, parse_at(args.at), str(Duration(args.window or cfg.diagnose.window)),
                     cfg, charts=args.format == "html", **connection(args))
    except ConfigError as exc:
        print(f"diagnose: config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (UsageError, ValueError) as exc:
        print(f"diagnose: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except PrometheusError as exc:  # only the first request (metric names) can fail the whole run
        print(f"diagnose: Prometheus unreachable: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except PullError as exc:
        print(f"diagnose: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    sys.stdout.write(report.render(args.format))
    return EXIT_BY_STATUS[report.status]
