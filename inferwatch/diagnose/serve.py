"""`inferwatch serve`: the Alertmanager webhook receiver as a long-running process.

Wires the config, the engine, the sinks and the HTTP server together, and owns the process lifecycle:
SIGTERM or Ctrl-C makes new notifications get 503, lets queued diagnoses finish within a grace period,
spools what is left (--spool; the next start resumes it), then exits 0.
"""
from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import socket
import sys
import threading
from pathlib import Path

from ..core.config import duration_seconds, is_duration, load_config
from ..core.prometheus import redact

from .command import UsageError, add_connection_arguments, connection
from .sinks import JsonLinesSink, MarkdownDirSink, SlackSink
from .webhook import Receiver, engine_diagnose, make_server

log = logging.getLogger("inferwatch.serve")

EXAMPLES = """\
examples:
  inferwatch serve --prometheus http://prometheus:9090 --markdown-dir /var/lib/inferwatch/reports
  inferwatch serve --listen 0.0.0.0:9095 --prometheus http://prometheus:9090 \\
      --jsonl /var/log/inferwatch/diagnoses.jsonl --slack-url-file /etc/inferwatch/slack-url

Alertmanager side: `inferwatch generate` writes alertmanager/inferwatch-routes.yaml, whose diagnose
receiver posts here (routing.diagnose_url). Endpoints: POST /alerts, GET /healthz, GET /metrics,
GET /reports/<id> (the HTML pages of --markdown-dir).
"""


def _listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT like 127.0.0.1:9095, got {text!r}")
    return host.strip("[]"), int(port)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def _http_url(text: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"expected an http(s):// URL, got {redact(text)!r}")
    return text.rstrip("/")


def slack_url(args: argparse.Namespace) -> str | None:
    """The Slack URL is a credential: from a file or an environment variable (out of `ps`), or the flag."""
    given = [o for o, v in (("--slack-url", args.slack_url), ("--slack-url-file", args.slack_url_file),
                            ("--slack-url-env", args.slack_url_env)) if v]
    if len(given) > 1:
        raise UsageError(f"{' and '.join(given)}: give the Slack URL one way")
    if args.slack_url_file:
        try:
            text = Path(args.slack_url_file).read_text().strip()
        except OSError as exc:
            raise UsageError(f"--slack-url-file {args.slack_url_file}: {exc.strerror}") from None
    elif args.slack_url_env:
        text = os.environ.get(args.slack_url_env, "").strip()
        if not text:
            raise UsageError(f"--slack-url-env: environment variable {args.slack_url_env} is not set")
    else:
        return args.slack_url
    try:
        return _http_url(text)
    except argparse.ArgumentTypeError:  # never echo the content: it is a secret
        where = args.slack_url_file or args.slack_url_env
        raise UsageError(f"{given[0]} {where}: does not hold an http(s):// URL") from None


def _window(text: str) -> str:
    if not is_duration(text) or duration_seconds(text) < 60:
        raise argparse.ArgumentTypeError(f"expected a duration of at least 1m like 30m or 1h, got {text!r}")
    return text


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {text!r}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve", help="receive Alertmanager webhooks and diagnose every alert in the background",
        description="Alertmanager webhook receiver. Answers 202 at once, diagnoses each new notification "
                    "against Prometheus (scoped by the alerts' common labels, at their latest startsAt) and "
                    "delivers the report to the sinks. Re-sends of the same alerts are ignored; a full queue "
                    "answers 503 so Alertmanager retries. With no sink option, JSON lines go to stdout.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--listen", type=_listen, default="127.0.0.1:9095", metavar="HOST:PORT",
                   help="address to listen on (default 127.0.0.1:9095; port 0 picks a free one)")
    p.add_argument("--prometheus", type=_http_url, metavar="URL", default=os.environ.get("INFERWATCH_PROMETHEUS_URL"),
                   help="Prometheus (or compatible) base URL the diagnosis queries; default $INFERWATCH_PROMETHEUS_URL")
    p.add_argument("--config", "-c", type=Path, help="inferwatch.yaml: label names must match the alerts'")
    add_connection_arguments(p)
    p.add_argument("--window", type=_window, metavar="DURATION",
                   help="incident window ending at the alerts' start (default: diagnose.window, 15m)")
    p.add_argument("--jsonl", metavar="PATH", help="append one JSON object per diagnosis ('-' = stdout)")
    p.add_argument("--markdown-dir", type=Path, metavar="DIR",
                   help="report folder: one HTML page (with charts) and one markdown file per diagnosis, "
                        "served at GET /reports/<id>")
    p.add_argument("--public-url", type=_http_url, metavar="URL",
                   help="base URL people reach this receiver at; markdown and chat messages link the HTML "
                        "report there (default: the --listen address)")
    p.add_argument("--slack-url", type=_http_url, metavar="URL",
                   help="Slack-compatible incoming webhook that gets a short report (visible in `ps`: "
                        "prefer --slack-url-file or --slack-url-env)")
    p.add_argument("--slack-url-file", type=Path, metavar="PATH",
                   help="file holding the Slack webhook URL (a mounted Secret; keeps the URL out of `ps`)")
    p.add_argument("--slack-url-env", metavar="VAR", help="environment variable holding the Slack webhook URL")
    p.add_argument("--concurrency", type=_positive, default=2, metavar="N", help="diagnoses run at once (default 2)")
    p.add_argument("--queue-size", type=_positive, default=100, metavar="N",
                   help="notifications waiting for a worker before answering 503 (default 100)")
    p.add_argument("--max-body", type=_positive, default=1 << 20, metavar="BYTES",
                   help="largest accepted payload, larger ones get 413 (default 1048576)")
    p.add_argument("--diagnose-resolved", action="store_true",
                   help="diagnose resolved notifications too (default: acknowledge and ignore them)")
    p.add_argument("--shutdown-grace", type=_seconds, default=30.0, metavar="SECONDS",
                   help="on SIGTERM, time given to queued diagnoses before exiting (default 30)")
    p.add_argument("--spool", type=Path, metavar="PATH",
                   help="where notifications acknowledged but not diagnosed by the end of the grace are kept; "
                        "the next start resumes them (default: none, they are lost and logged)")
    p.add_argument("--max-connections", type=_positive, default=64, metavar="N",
                   help="connections served at once (a thread each); more get 503 at once (default 64)")
    p.set_defaults(func=cmd_serve)


def sinks_from(args: argparse.Namespace, slack: str | None) -> list:
    sinks: list = []
    if args.jsonl or not (args.markdown_dir or slack):
        sinks.append(JsonLinesSink(args.jsonl or "-"))
    if args.markdown_dir:
        sinks.append(MarkdownDirSink(args.markdown_dir))
    if slack:
        sinks.append(SlackSink(slack))
    return sinks


def cmd_serve(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    cfg = load_config(args.config)
    window = args.window or cfg.diagnose.window
    try:
        if not args.prometheus:
            raise UsageError("--prometheus URL is required (or set INFERWATCH_PROMETHEUS_URL)")
        conn = connection(args)
        sinks = sinks_from(args, slack_url(args))
        if args.spool and not os.access(args.spool.parent, os.W_OK):
            raise UsageError(f"--spool {args.spool}: folder {args.spool.parent} is not writable")
    except UsageError as exc:
        print(f"inferwatch serve: {exc}", file=sys.stderr)
        return 2
    receiver = Receiver(cfg, engine_diagnose(args.prometheus, window, cfg, conn, charts=bool(args.markdown_dir)),
                        sinks, concurrency=args.concurrency, queue_size=args.queue_size,
                        diagnose_resolved=args.diagnose_resolved, public_url=args.public_url, spool=args.spool)
    host, port = args.listen
    try:
        server = make_server(receiver, host, port, args.max_body, args.max_connections)
    except OSError as exc:
        print(f"inferwatch serve: --listen {host}:{port}: cannot listen: {exc.strerror or exc}", file=sys.stderr)
        return 2
    if not args.public_url:
        name = socket.gethostname() if host in ("0.0.0.0", "::", "") else host
        receiver.public_url = f"http://{name}:{server.server_address[1]}"
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    receiver.start()
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    log.info("listening on http://%s:%d (POST /alerts, GET /healthz, /metrics, /reports/<id>); diagnosing against %s",
             host, server.server_address[1], redact(args.prometheus))
    while not stop.wait(0.5):
        pass
    receiver.begin_stop()  # new notifications get 503 while the queue drains
    log.info("stopping: new notifications get 503; finishing queued diagnoses (grace %gs)", args.shutdown_grace)
    left = receiver.stop(args.shutdown_grace)
    server.shutdown()
    server.server_close()
    if left and args.spool:
        log.warning("%d notifications not diagnosed within the grace: spooled to %s for the next start",
                    left, args.spool)
    elif left:
        log.warning("%d notifications not diagnosed within the grace and lost (no --spool)", left)
    log.info("stopped")
    return 0
