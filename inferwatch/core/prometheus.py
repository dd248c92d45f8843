"""A small client for the Prometheus HTTP query API (Prometheus, Thanos Query, Mimir, VictoriaMetrics, ARMS).

The one owner of talking to a query API: `diagnose`, the webhook, the demo and the test harness all
query through `PromClient`. Only three endpoints are used: range queries, instant queries and
`label/__name__/values`. Connection
options cover what real clusters need (bearer token, basic auth, CA bundle or insecure TLS, extra headers
such as `X-Scope-OrgID`). Secrets live only in the session's headers and auth: error messages name the
URL without its user-info and never echo a header value. Every request is counted, so the benchmark can
show that the number of queries does not grow with the number of pods.

Time limits are wall-clock: requests' read timeout applies to each socket read, so a server that sends
one byte every few seconds would hold a request forever. Each request runs in a daemon thread that the
caller joins until the request's own limit or the client's overall `deadline`, whichever comes first, and
the thread reads the body in pieces, checking the clock between them (and stops at MAX_BODY bytes).
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit, urlunsplit

import requests
import urllib3

from .timefmt import iso


class PrometheusError(RuntimeError):
    """A query failed; the message is safe to print."""


class Unreachable(PrometheusError):
    """Prometheus could not be reached or did not answer at all."""


class QueryTimeout(PrometheusError):
    """One query ran out of time (client or server side)."""


@dataclass(frozen=True)
class Connection:
    """How to reach a Prometheus-compatible API. Every field is optional."""
    bearer_token: str | None = field(default=None, repr=False)
    bearer_token_file: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_bundle: str | None = None
    insecure: bool = False
    headers: dict[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_options(cls, **options: Any) -> "Connection":
        """Build from keyword arguments, naming any unknown one (they come from `engine.run(**connection)`)."""
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"unknown connection option(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**options)

    def token(self) -> str | None:
        if self.bearer_token:
            return self.bearer_token
        if self.bearer_token_file:
            try:
                return Path(self.bearer_token_file).read_text().strip()
            except OSError as exc:
                raise ValueError(f"bearer token file {self.bearer_token_file}: {exc.strerror}") from None
        return None


def redact(url: str) -> str:
    """The URL without user:password@ (safe for messages and reports)."""
    parts = urlsplit(url)
    safe = urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, parts.query, ""))
    return safe if "@" not in safe else "(a URL with credentials, not shown)"


MAX_BODY = 64 << 20  # bytes; diagnosis answers are kilobytes, a larger one is not worth the memory


class PromClient:
    """Thread-safe enough for concurrent queries: one requests.Session, a locked request counter.
    `deadline` (time.monotonic() seconds) ends every request still running at that moment."""

    def __init__(self, url: str, connection: Connection | None = None, timeout: float = 10.0,
                 deadline: float | None = None) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"--prometheus: {redact(url)!r} is not an http(s) URL")
        conn = connection or Connection()
        userinfo = urlsplit(url)
        if userinfo.username is not None:  # user:password@ in the URL is basic auth, said once, not twice
            if conn.username is not None or conn.bearer_token or conn.bearer_token_file:
                raise ValueError("--prometheus: the URL carries user:password@ and another credential option "
                                 "is given; use one")
            conn = replace(conn, username=unquote(userinfo.username), password=unquote(userinfo.password or ""))
        elif conn.username is not None and (conn.bearer_token or conn.bearer_token_file):
            raise ValueError("--username and a bearer token both given; use one")
        self.base = redact(url).rstrip("/")
        self.safe_url = self.base
        self.timeout = timeout
        self.deadline = deadline
        self.requests = 0
        self._lock = threading.Lock()
        self.session = requests.Session()
        self.session.trust_env = False  # no surprise proxies from the environment on loopback tests
        self.session.headers.update(conn.headers)
        token = conn.token()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        if conn.username is not None:
            self.session.auth = (conn.username, conn.password or "")
        self.session.verify = False if conn.insecure else (conn.ca_bundle or True)
        if conn.insecure:
            import urllib3
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

    def close(self) -> None:
        self.session.close()

    # ---- endpoints ---------------------------------------------------------------------------

    def metric_names(self, start: float, end: float) -> set[str]:
        """Metric names with samples between start and end (one request)."""
        data = self._get("/api/v1/label/__name__/values", {"start": start, "end": end}, self.timeout, post=False)
        if not isinstance(data, list) or not all(isinstance(n, str) for n in data):
            raise PrometheusError(f"{self.safe_url}: malformed answer (metric names are not a list of strings)")
        return set(data)

    def query_range(self, expr: str, start: float, end: float, step: float, timeout: float) -> list[dict]:
        params = {"query": expr, "start": start, "end": end, "step": step, "timeout": f"{timeout:g}s"}
        return self._series(self._get("/api/v1/query_range", params, timeout), "matrix")

    def query(self, expr: str, at: float | None = None, timeout: float | None = None) -> list[Any]:
        """Instant query at `at` (default: the server's now); `data.result` (for scalars `[ts, "value"]`)."""
        timeout = self.timeout if timeout is None else timeout
        params: dict[str, Any] = {"query": expr, "timeout": f"{timeout:g}s"}
        if at is not None:
            params["time"] = at
        data = self._get("/api/v1/query", params, timeout)
        if isinstance(data, dict) and data.get("resultType") in ("scalar", "string"):
            return self._result(data)
        return self._series(data, "vector")

    def _result(self, data: Any) -> list[Any]:
        if not isinstance(data, dict) or not isinstance(data.get("result"), list):
            raise PrometheusError(f"{self.safe_url}: malformed answer (data.result is not a list)")
        return data["result"]

    def _series(self, data: Any, kind: str) -> list[dict]:
        """`data.result` of a vector or matrix answer, checked: every series has labels and points."""
        result = self._result(data)
        points = "values" if kind == "matrix" else "value"
        for s in result:
            if not (isinstance(s, dict) and isinstance(s.get("metric"), dict) and isinstance(s.get(points), list)):
                raise PrometheusError(f"{self.safe_url}: malformed answer (a {kind} series without metric "
                                      f"and {points})")
        return result

    # ---- transport -----------------------------------------------------------------------------

    def _get(self, path: str, params: dict[str, Any], timeout: float, post: bool = True) -> Any:
        with self._lock:
            self.requests += 1
        ends = time.monotonic() + timeout + 1.0
        if self.deadline is not None and self.deadline < ends:
            ends, why = self.deadline, "the diagnosis deadline passed"
        else:
            why = f"no answer from {self.safe_url} within {timeout:g}s"
        if ends <= time.monotonic():
            raise QueryTimeout(why)
        box: dict[str, Any] = {}
        worker = threading.Thread(target=self._fetch, args=(path, params, post, ends, box), daemon=True,
                                  name="prometheus-request")
        worker.start()
        worker.join(max(0.0, ends - time.monotonic()))
        if worker.is_alive() or "late" in box:
            box["abandoned"] = True
            if "response" in box:
                box["response"].close()
            raise QueryTimeout(why)
        if "error" in box:
            raise box["error"]
        status, raw = box["answer"]
        if status in (401, 403):
            raise Unreachable(f"{self.safe_url} refused the credentials (HTTP {status})")
        try:
            body = json.loads(raw)
        except ValueError:
            raise PrometheusError(f"{self.safe_url}{path}: HTTP {status}, not a Prometheus API answer") from None
        if not isinstance(body, dict):
            raise PrometheusError(f"{self.safe_url}{path}: malformed answer (a JSON {type(body).__name__}, "
                                  "not an object)")
        if body.get("status") != "success":
            kind, msg = body.get("errorType", "error"), str(body.get("error", ""))[:300]
            if kind == "timeout" or "timeout" in msg or "context deadline exceeded" in msg:
                raise QueryTimeout(f"query timed out on the server ({msg})")
            raise PrometheusError(f"{kind}: {msg}")
        if "data" not in body:
            raise PrometheusError(f"{self.safe_url}{path}: malformed answer (status success without data)")
        return body["data"]


    def _fetch(self, path: str, params: dict[str, Any], post: bool, ends: float, box: dict[str, Any]) -> None:
        """One request in its own thread: (status, body bytes), or an error, or `late`, into `box`."""
        # POST form keeps long queries out of URLs (and proxy logs); every API above accepts it.
        left = max(0.1, ends - time.monotonic())
        limits = (min(left, 5.0), left)
        try:
            r = (self.session.post(self.base + path, data=params, timeout=limits, stream=True) if post
                 else self.session.get(self.base + path, params=params, timeout=limits, stream=True))
            box["response"] = r
            with r:
                body = bytearray()
                while not box.get("abandoned"):
                    if time.monotonic() > ends:
                        box["late"] = True
                        return
                    piece = r.raw.read1(1 << 16, decode_content=True)
                    if not piece:
                        break
                    body += piece
                    if len(body) > MAX_BODY:
                        raise PrometheusError(f"{self.safe_url}{path}: answer larger than {MAX_BODY >> 20} MiB")
                box["answer"] = (r.status_code, bytes(body))
        except PrometheusError as exc:
            box["error"] = exc
        except (requests.Timeout, urllib3.exceptions.TimeoutError):
            box["late"] = True
        except requests.ConnectionError as exc:
            box["error"] = Unreachable(f"cannot connect to {self.safe_url}: {_reason(exc)}")
        except Exception as exc:  # noqa: BLE001 - urllib3 read errors (e.g. a closed socket), decoding
            box["error"] = Unreachable(f"request to {self.safe_url} failed: {type(exc).__name__}")


def _reason(exc: requests.ConnectionError) -> str:
    text = str(exc)
    for hint in ("Connection refused", "Name or service not known", "No route to host", "timed out",
                 "certificate verify failed", "Temporary failure in name resolution"):
        if hint in text:
            return hint.lower()
    return type(exc).__name__



def graph_url(base: str, expr: str, start: float, end: float) -> str:
    """The Prometheus graph page for `expr` over [start, end] (Prometheus 3 redirects /graph to /query)."""
    params = {"g0.expr": expr, "g0.tab": "0", "g0.range_input": f"{int(round(end - start))}s",
              "g0.end_input": iso(end).replace("T", " ").rstrip("Z")}
    return f"{base.rstrip('/')}/graph?{urlencode(params, quote_via=quote)}"
