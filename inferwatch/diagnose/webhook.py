"""Alertmanager webhook receiver: acknowledge at once, diagnose in the background, deliver to sinks.

Alertmanager cancels a notification that takes longer than group_interval and retries on 5xx, so the
receiver answers 202 before any PromQL runs, de-duplicates the re-sends of one incident (group key plus
each alert's fingerprint and start), and answers 503 only when its queue is full, which Alertmanager retries.
A failed diagnosis (Prometheus down) is recorded in every sink and forgotten, so a later re-send retries it.

Nothing acknowledged is lost: on shutdown new notifications get 503 while the queue drains within the
grace, and what is still queued or running then goes to a spool file the next start resumes. Hostile
clients get bounded resources: a whole-request read deadline, a cap on connections (each is a thread),
a nesting limit on the JSON, and every request gets an answer that /metrics counts.
"""
from __future__ import annotations

import json
import logging
import queue
import re
import socket
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

from ..core.config import Config

from .sinks import MarkdownDirSink, Outcome, Report, Sink, write_atomic

log = logging.getLogger("inferwatch.serve")

DiagnoseFn = Callable[[dict[str, str | None], datetime], Report]
POST_PATHS = ("/", "/alerts")
DEDUPE_MEMORY = 10_000  # notification keys remembered; old ones are forgotten first
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
MAX_DEPTH = 32  # JSON nesting; a webhook payload needs 4 (payload > alerts > alert > labels)
EARLIEST_START = datetime(2000, 1, 1, tzinfo=timezone.utc)


class PayloadError(ValueError):
    """The body is not an Alertmanager webhook payload; the message says which field is wrong."""


@dataclass(frozen=True)
class Alert:
    status: str
    labels: dict[str, str]
    starts_at: datetime
    fingerprint: str


@dataclass(frozen=True)
class Notification:
    group_key: str
    status: str
    alerts: tuple[Alert, ...]

    def key(self) -> str:
        """Same group, same alerts, same starts: a re-send of something already diagnosed."""
        parts = sorted(f"{a.fingerprint}@{a.starts_at.timestamp():.0f}" for a in self.alerts)
        return f"{self.status}|{self.group_key}|{','.join(parts)}"

    def current(self) -> tuple[Alert, ...]:
        """The alerts in the notification's own state (a firing group also lists its resolved alerts)."""
        return tuple(a for a in self.alerts if a.status == self.status) or self.alerts

    def common_labels(self) -> dict[str, str]:
        first, *rest = (a.labels for a in self.current())
        return {k: v for k, v in first.items() if all(other.get(k) == v for other in rest)}

    def alertnames(self) -> tuple[str, ...]:
        return tuple(sorted({a.labels.get("alertname", "?") for a in self.current()}))

    def latest_start(self) -> datetime:
        """When every alert of the notification was firing."""
        return max(a.starts_at for a in self.current())


# ---- parsing ---------------------------------------------------------------------------------------

_RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def parse_time(text: Any, where: str) -> datetime:
    """RFC 3339 as Go writes it (nanoseconds allowed, which datetime cannot hold: cut to microseconds),
    between 2000 and a day from now (Go's zero time, 0001-01-01, means "unset", not an incident)."""
    m = _RFC3339.match(text) if isinstance(text, str) else None
    if not m:
        raise PayloadError(f"{where}: expected an RFC 3339 time like 2026-01-01T01:50:00Z, got {text!r}")
    frac = (m.group(2) or ".0")[:7]
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    try:
        when = datetime.fromisoformat(f"{m.group(1)}{frac}{zone}").astimezone(timezone.utc)
    except (ValueError, OverflowError):
        raise PayloadError(f"{where}: {text!r} is not a valid time") from None
    if not EARLIEST_START <= when <= datetime.now(timezone.utc) + timedelta(days=1):
        raise PayloadError(f"{where}: {text!r} is not between 2000 and a day from now")
    return when


def _depth(body: bytes) -> int:
    """Deepest nesting of [ and { outside strings, in one pass (json.loads would recurse first)."""
    depth = deepest = 0
    for token in re.finditer(rb'"(?:[^"\\]|\\.)*"|[\[{]|[\]}]', body):
        t = token.group()
        if t in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_DEPTH:
                break
        elif t in (b"]", b"}"):
            depth -= 1
    return deepest


def _field(obj: dict, key: str, kind: type, where: str) -> Any:
    if key not in obj:
        raise PayloadError(f"{where}{key}: missing")
    if not isinstance(obj[key], kind):
        raise PayloadError(f"{where}{key}: expected {kind.__name__}, got {type(obj[key]).__name__}")
    return obj[key]


def _labels(obj: dict, where: str) -> dict[str, str]:
    labels = _field(obj, "labels", dict, where)
    for k, v in labels.items():
        if not isinstance(v, str):
            raise PayloadError(f"{where}labels.{k}: expected a string, got {type(v).__name__}")
    return labels


def parse_notification(body: bytes) -> Notification:
    """Validate a version 4 payload; unknown fields are ignored (Alertmanager keeps adding some)."""
    if _depth(body) > MAX_DEPTH:
        raise PayloadError(f"body nests deeper than {MAX_DEPTH} levels; an Alertmanager payload needs 4")
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise PayloadError(f"body is not JSON: {str(exc)[:200]}") from None
    if not isinstance(data, dict):
        raise PayloadError("body must be a JSON object (an Alertmanager webhook payload)")
    version = _field(data, "version", str, "")
    if version != "4":
        raise PayloadError(f"version: only webhook payload version 4 is understood, got {version!r}")
    group_key = _field(data, "groupKey", str, "")
    status = _field(data, "status", str, "")
    if status not in ("firing", "resolved"):
        raise PayloadError(f"status: expected firing or resolved, got {status!r}")
    raw_alerts = _field(data, "alerts", list, "")
    if not raw_alerts:
        raise PayloadError("alerts: empty")
    alerts = []
    for i, a in enumerate(raw_alerts):
        where = f"alerts[{i}]."
        if not isinstance(a, dict):
            raise PayloadError(f"alerts[{i}]: expected an object, got {type(a).__name__}")
        alerts.append(Alert(status=_field(a, "status", str, where), labels=_labels(a, where),
                            starts_at=parse_time(a.get("startsAt"), where + "startsAt"),
                            fingerprint=_field(a, "fingerprint", str, where)))
    return Notification(group_key=group_key, status=status, alerts=tuple(alerts))


def scope_of(notification: Notification, cfg: Config) -> dict[str, str | None]:
    """The labels every alert shares, under the names `cfg.labels` gives them; absent ones are None."""
    common = notification.common_labels()
    lb = cfg.labels
    names = {"namespace": lb.namespace, "workload": lb.workload, "model": lb.model, "pod": lb.pod,
             "cluster": lb.cluster}
    return {role: (common.get(name) if name else None) for role, name in names.items()}


# ---- metrics -----------------------------------------------------------------------------------------

class Metrics:
    """The receiver's own Prometheus metrics; a handful of counters needs no client library."""

    HELP = {
        "inferwatch_webhook_notifications_received_total": ("counter", "Valid notifications received."),
        "inferwatch_webhook_notifications_skipped_total":
            ("counter", "Valid notifications not diagnosed, by reason (duplicate, resolved, queue_full)."),
        "inferwatch_webhook_requests_total": ("counter", "HTTP requests answered, by status code (every one)."),
        "inferwatch_webhook_invalid_requests_total": ("counter", "Requests refused, by HTTP status code."),
        "inferwatch_webhook_connections_refused_total":
            ("counter", "Connections answered 503 at once because the connection cap was reached."),
        "inferwatch_webhook_notifications_spooled_total":
            ("counter", "Acknowledged notifications not diagnosed by the end of the shutdown grace, spooled."),
        "inferwatch_webhook_notifications_resumed_total": ("counter", "Spooled notifications resumed at start."),
        "inferwatch_webhook_diagnosed_total": ("counter", "Diagnoses completed and delivered."),
        "inferwatch_webhook_diagnosis_failures_total": ("counter", "Diagnoses that raised (e.g. Prometheus down)."),
        "inferwatch_webhook_sink_failures_total": ("counter", "Deliveries that failed, by sink."),
        "inferwatch_webhook_queue_depth": ("gauge", "Notifications waiting for a diagnosis worker."),
        "inferwatch_webhook_diagnoses_in_progress": ("gauge", "Diagnoses running now."),
        "inferwatch_webhook_diagnosis_duration_seconds": ("histogram", "Time a diagnosis took, failed or not."),
    }

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self._buckets = [0] * len(DURATION_BUCKETS)  # cumulative, like the exposition
        self._duration_sum = 0.0
        self._duration_count = 0

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self._values[key] = self._values.get(key, 0) + amount

    def set(self, name: str, value: float) -> None:
        with self._lock:
            self._values[(name, ())] = value

    def gauge(self, name: str) -> int:
        with self._lock:
            return int(self._values.get((name, ()), 0))

    def observe(self, seconds: float) -> None:
        with self._lock:
            for i, bound in enumerate(DURATION_BUCKETS):
                self._buckets[i] += seconds <= bound
            self._duration_sum += seconds
            self._duration_count += 1

    def render(self) -> str:
        with self._lock:
            values, buckets = dict(self._values), list(self._buckets)
            total, count = self._duration_sum, self._duration_count
        out = []
        for name, (kind, text) in self.HELP.items():
            out += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
            if kind == "histogram":
                out += [f'{name}_bucket{{le="{b}"}} {n}' for b, n in zip(DURATION_BUCKETS, buckets)]
                out += [f'{name}_bucket{{le="+Inf"}} {count}', f"{name}_sum {total:.6f}", f"{name}_count {count}"]
                continue
            series = sorted((k, v) for k, v in values.items() if k[0] == name) or [((name, ()), 0)]
            for (_, labels), v in series:
                lbl = ",".join(f'{k}="{val}"' for k, val in labels)
                out.append(f"{name}{{{lbl}}} {v:g}" if lbl else f"{name} {v:g}")
        return "\n".join(out) + "\n"


# ---- the receiver ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Job:
    notification: Notification
    scope: dict[str, str | None]
    received_at: datetime
    follow_up: bool = False  # the second look, once the symptom has lasted long enough to be judged


class Receiver:
    """Queue, workers, de-duplication and delivery; the HTTP layer only parses and calls `submit`."""

    def __init__(self, cfg: Config, diagnose: DiagnoseFn, sinks: list[Sink], concurrency: int = 2,
                 queue_size: int = 100, diagnose_resolved: bool = False, public_url: str | None = None,
                 spool: Path | None = None) -> None:
        self.cfg = cfg
        self.public_url = public_url  # base URL of GET /reports/<id> for links in markdown and chat
        self.spool = spool
        self._running: dict[int, Job] = {}  # worker thread id -> the job it is diagnosing
        self._state = threading.Lock()  # _running and the decision to deliver or spool
        self.diagnose = diagnose
        self.sinks = sinks
        self.diagnose_resolved = diagnose_resolved
        self.metrics = Metrics()
        self._queue: queue.Queue[Job] = queue.Queue(maxsize=queue_size)
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._seen_lock = threading.Lock()
        self._stopping = threading.Event()
        self._abandoned = threading.Event()  # grace is over: workers take no further job
        self._workers = [threading.Thread(target=self._work, name=f"diagnose-{i}", daemon=True)
                         for i in range(concurrency)]

    @property
    def reports(self) -> MarkdownDirSink | None:
        """The report folder this receiver writes (and serves at GET /reports/<id>), if any."""
        return next((s for s in self.sinks if isinstance(s, MarkdownDirSink)), None)

    def start(self) -> Receiver:
        """Start the workers, then queue what the last run spooled (waiting for room beyond queue_size)."""
        for w in self._workers:
            w.start()
        for n, received in self._read_spool():
            with self._seen_lock:
                self._seen[n.key()] = None
            self._queue.put(Job(n, scope_of(n, self.cfg), received))
            self.metrics.inc("inferwatch_webhook_notifications_resumed_total")
        return self

    def _read_spool(self) -> list[tuple[Notification, datetime]]:
        if self.spool is None or not self.spool.exists():
            return []
        try:
            entries = json.loads(self.spool.read_text(encoding="utf-8"))
            out = [(parse_notification(json.dumps(e["notification"]).encode()),
                    datetime.fromisoformat(e["received_at"])) for e in entries]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("spool %s unreadable (%s); left in place, not resumed", self.spool, exc)
            return []
        self.spool.unlink()
        log.info("resuming %d notifications spooled at the last shutdown", len(out))
        return out

    def _write_spool(self, jobs: list[Job]) -> None:
        entries = [{"notification": _plain(j.notification), "received_at": j.received_at.isoformat()}
                   for j in jobs]
        write_atomic(self.spool, json.dumps(entries, indent=1) + "\n")

    def submit(self, notification: Notification) -> tuple[int, str]:
        """HTTP status and a short word for Alertmanager (2xx = delivered, 503 = retry later)."""
        self.metrics.inc("inferwatch_webhook_notifications_received_total")
        if notification.status == "resolved" and not self.diagnose_resolved:
            self.metrics.inc("inferwatch_webhook_notifications_skipped_total", reason="resolved")
            return 200, "ignored: resolved"
        key = notification.key()
        with self._seen_lock:
            if key in self._seen:
                self.metrics.inc("inferwatch_webhook_notifications_skipped_total", reason="duplicate")
                return 200, "duplicate"
            if self._stopping.is_set():
                return 503, "shutting down"
            try:
                self._queue.put_nowait(Job(notification, scope_of(notification, self.cfg),
                                           datetime.now(timezone.utc)))
            except queue.Full:
                self.metrics.inc("inferwatch_webhook_notifications_skipped_total", reason="queue_full")
                return 503, "queue full, retry later"
            self._seen[key] = None
            while len(self._seen) > DEDUPE_MEMORY:
                self._seen.popitem(last=False)
        self.metrics.set("inferwatch_webhook_queue_depth", self._queue.qsize())
        return 202, "queued"

    def _forget(self, key: str) -> None:
        with self._seen_lock:
            self._seen.pop(key, None)

    def _work(self) -> None:
        me = threading.get_ident()
        while not self._abandoned.is_set() and not (self._stopping.is_set() and self._queue.empty()):
            with self._state:  # taking a job and abandoning are ordered: a job is run or spooled, not both
                if self._abandoned.is_set():
                    return
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    job = None
                else:
                    self._running[me] = job
            if job is None:
                time.sleep(0.05)
                continue
            self.metrics.set("inferwatch_webhook_queue_depth", self._queue.qsize())
            self.metrics.inc("inferwatch_webhook_diagnoses_in_progress")
            try:
                outcome = self._run(job)
                with self._state:
                    if self._running.pop(me, None) is None:  # spooled at the end of the grace
                        return
                self._deliver(outcome)
                self._follow_up(job, outcome)
            finally:
                self.metrics.inc("inferwatch_webhook_diagnoses_in_progress", -1)

    def settle(self) -> timedelta:
        """How long a symptom must have lasted before the diagnosis can name it: the share of the window
        a condition must hold (`diagnose.min_persistence` x `diagnose.window`)."""
        d = self.cfg.diagnose
        return timedelta(seconds=d.window.seconds() * d.min_persistence)

    def _follow_up(self, job: Job, outcome: Outcome) -> None:
        """A fast page arrives minutes into an incident, before the diagnosis can tell a cause from noise;
        when the first look finds none, look again once the alerts' start is `settle()` old. Only a
        `healthy` look is repeated: `unknown` (no series in scope) and `partial` would not change by waiting."""
        n = job.notification
        if (job.follow_up or outcome.report is None or outcome.report.status != "healthy"
                or n.status != "firing"):
            return
        due = n.latest_start() + self.settle()
        if outcome.at >= due:
            return
        later = replace(job, follow_up=True)
        delay = (due - datetime.now(timezone.utc)).total_seconds()
        if delay <= 0:
            self._requeue(later)
            return
        timer = threading.Timer(delay, self._requeue, (later,))
        timer.daemon = True  # a stopping receiver drops follow-ups not yet due
        timer.start()

    def _requeue(self, job: Job) -> None:
        if not self._stopping.is_set():
            try:
                self._queue.put_nowait(job)
            except queue.Full:
                self.metrics.inc("inferwatch_webhook_notifications_skipped_total", reason="queue_full")

    def _run(self, job: Job) -> Outcome:
        n = job.notification
        start = n.latest_start() + (self.settle() if job.follow_up else timedelta(0))
        at = min(start, datetime.now(timezone.utc))
        report, error = None, None
        began = time.monotonic()
        try:
            report = self.diagnose(job.scope, at)
        except Exception as exc:  # any engine failure is recorded, never kills the worker
            error = f"{type(exc).__name__}: {exc}"
            log.warning("diagnosis of %s failed: %s", n.alertnames(), error)
        duration = time.monotonic() - began
        self.metrics.observe(duration)
        if error:
            self.metrics.inc("inferwatch_webhook_diagnosis_failures_total")
            self._forget(n.key())  # a re-send of this incident gets another try
        else:
            self.metrics.inc("inferwatch_webhook_diagnosed_total")
        outcome = Outcome(key=n.key(), group_key=n.group_key, status=n.status, alertnames=n.alertnames(),
                          scope=job.scope, at=at, received_at=job.received_at, duration_seconds=duration,
                          report=report, error=error)
        if self.public_url and self.reports is not None:
            outcome = replace(outcome, report_url=f"{self.public_url.rstrip('/')}/reports/{outcome.id}")
        return outcome

    def _deliver(self, outcome: Outcome) -> None:
        for sink in self.sinks:
            try:
                sink.deliver(outcome)
            except Exception as exc:  # one broken sink must not starve the others
                self.metrics.inc("inferwatch_webhook_sink_failures_total", sink=sink.name)
                log.warning("sink %s failed for %s: %s", sink.name, outcome.alertnames, exc)

    def begin_stop(self) -> None:
        """From now on new notifications get 503 (Alertmanager retries them elsewhere or later)."""
        self._stopping.set()

    def stop(self, grace: float) -> int:
        """Finish queued and running diagnoses within `grace` seconds; what is left (queued or running)
        goes to the spool file, or is lost without one. Returns how many were left."""
        self._stopping.set()
        deadline = time.monotonic() + grace
        for w in self._workers:
            w.join(max(0.0, deadline - time.monotonic()))
        with self._state:
            self._abandoned.set()
            left = list(self._running.values())
            self._running.clear()
            while True:
                try:
                    left.append(self._queue.get_nowait())
                except queue.Empty:
                    break
        self.metrics.set("inferwatch_webhook_queue_depth", 0)
        if left and self.spool is not None:
            self._write_spool(left)
            self.metrics.inc("inferwatch_webhook_notifications_spooled_total", len(left))
        return len(left)


# ---- HTTP ----------------------------------------------------------------------------------------------

def _plain(n: Notification) -> dict[str, Any]:
    """A notification as a version 4 payload again (for the spool)."""
    return {"version": "4", "groupKey": n.group_key, "status": n.status,
            "alerts": [{"status": a.status, "labels": a.labels, "fingerprint": a.fingerprint,
                        "startsAt": a.starts_at.isoformat().replace("+00:00", "Z")} for a in n.alerts]}


READ_DEADLINE = 15.0  # seconds for a whole request (line, headers, body), however slowly it trickles
MAX_CONNECTIONS = 64  # connections served at once (a thread each); more get 503 at once


def _busy(code: int, word: str) -> bytes:
    body = json.dumps({"error": word}).encode() + b"\n"
    return (f"HTTP/1.0 {code} {word}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"Retry-After: 30\r\nConnection: close\r\n\r\n").encode() + body


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer with a connection cap and a deep listen backlog (a burst is queued by the
    kernel instead of reset: every request is answered)."""
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address, handler, receiver: Receiver, max_connections: int) -> None:
        self.receiver = receiver
        self.slots = threading.BoundedSemaphore(max_connections)
        super().__init__(address, handler)

    def process_request(self, request, client_address) -> None:
        if not self.slots.acquire(blocking=False):
            self.receiver.metrics.inc("inferwatch_webhook_connections_refused_total")
            self.receiver.metrics.inc("inferwatch_webhook_requests_total", code="503")
            try:
                request.settimeout(1.0)
                request.sendall(_busy(503, "too many connections"))
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


def make_server(receiver: Receiver, host: str, port: int, max_body: int,
                max_connections: int = MAX_CONNECTIONS, read_deadline: float = READ_DEADLINE) -> ThreadingHTTPServer:
    """A threaded HTTP server: POST / or /alerts, GET /healthz, /metrics and /reports/<id> (the HTML pages)."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "inferwatch-serve"
        timeout = read_deadline + 1  # per read, a backstop; the watchdog below bounds the whole request

        def setup(self) -> None:
            super().setup()
            self._answered = False
            self._watchdog = threading.Timer(read_deadline, self._too_slow)
            self._watchdog.daemon = True
            self._watchdog.start()

        def _too_slow(self) -> None:
            """The whole request did not arrive in time: answer 408 and cut the connection."""
            if self._answered:
                return
            self._answered = True
            receiver.metrics.inc("inferwatch_webhook_invalid_requests_total", code="408")
            receiver.metrics.inc("inferwatch_webhook_requests_total", code="408")
            try:
                self.connection.sendall(_busy(408, "request not received in time"))
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

        def finish(self) -> None:
            self._watchdog.cancel()
            try:
                super().finish()
            except OSError:
                pass

        def handle_one_request(self) -> None:
            try:
                super().handle_one_request()
            except Exception as exc:  # noqa: BLE001 - every request is answered, even on a bug
                log.warning("request failed: %s: %s", type(exc).__name__, exc)
                if not self._answered:
                    try:
                        self._refuse(500, "internal error")
                    except OSError:
                        pass
                self.close_connection = True

        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            """http.server's own refusals (bad request line, 414, 501) are counted like ours."""
            if self._answered:
                return
            self._watchdog.cancel()
            receiver.metrics.inc("inferwatch_webhook_invalid_requests_total", code=str(code))
            receiver.metrics.inc("inferwatch_webhook_requests_total", code=str(code))
            self._answered = True
            super().send_error(code, message, explain)

        def do_POST(self) -> None:
            if self.path.split("?")[0] not in POST_PATHS:
                return self._refuse(404, f"POST alerts to {' or '.join(POST_PATHS)}")
            length = self.headers.get("Content-Length")
            if length is None or not length.isdigit():
                return self._refuse(411, "Content-Length required")
            if int(length) > max_body:
                self.close_connection = True
                return self._refuse(413, f"body of {length} bytes exceeds the limit of {max_body}")
            body = self.rfile.read(int(length))
            if len(body) < int(length):
                return self._refuse(400, "body shorter than Content-Length")
            self._watchdog.cancel()
            try:
                notification = parse_notification(body)
            except PayloadError as exc:
                return self._refuse(400, str(exc))
            code, word = receiver.submit(notification)
            self._reply(code, {"status": word})

        def do_GET(self) -> None:
            self._watchdog.cancel()
            path = self.path.split("?")[0]
            if path == "/healthz":
                return self._reply(200, {"status": "ok"})
            if path == "/metrics":
                return self._reply(200, receiver.metrics.render(), "text/plain; version=0.0.4")
            if path.startswith("/reports/") and receiver.reports is not None:
                page = receiver.reports.page(path.removeprefix("/reports/"))
                if page is None:
                    return self._refuse(404, "no such report")
                return self._reply(200, page.read_text(encoding="utf-8"), "text/html; charset=utf-8")
            self._refuse(404, "GET /healthz, /metrics or /reports/<id>; POST alerts to /alerts")

        def _refuse(self, code: int, message: str) -> None:
            if self._answered:
                return
            receiver.metrics.inc("inferwatch_webhook_invalid_requests_total", code=str(code))
            self._reply(code, {"error": message})

        def _reply(self, code: int, body: Any, content_type: str = "application/json") -> None:
            self._watchdog.cancel()
            if self._answered:  # the watchdog already answered 408
                return
            self._answered = True
            receiver.metrics.inc("inferwatch_webhook_requests_total", code=str(code))
            data = (body if isinstance(body, str) else json.dumps(body)).encode() + b"\n"
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            if code == 503:
                self.send_header("Retry-After", "30")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, fmt: str, *args: Any) -> None:
            log.debug("%s " + fmt, self.address_string(), *args)

    return _Server((host, port), Handler, receiver, max_connections)


def engine_diagnose(prometheus_url: str, window: str, cfg: Config, connection: dict | None = None,
                    charts: bool = False) -> DiagnoseFn:
    """The production `DiagnoseFn`: the diagnosis engine against one Prometheus (token, TLS, headers);
    `charts` fetches the series of the HTML page (one more query)."""
    from . import engine

    def run(scope: dict[str, str | None], at: datetime) -> Report:
        return engine.run(prometheus_url, engine.Scope(**scope), at, window, cfg, charts=charts, **(connection or {}))

    return run
