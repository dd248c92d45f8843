"""A small client for the Prometheus HTTP query API (Prometheus, Thanos Query, Mimir, VictoriaMetrics, ARMS).

The one owner of talking to a query API: `diagnose`, the webhook, the demo and the test harness all
query through `PromClient`. Only three endpoints are used: range queries, instant queries and
`label/__name__/values`. Connection
options cover what real clusters need (bearer token, basic auth, CA bundle or insecure TLS, extra headers
such as `X-Scope-OrgID`). Secrets live only in the session's headers and auth: error messages name the
URL without its user-info and never echo a header value. Every request is counted, so the benchmark can
show that the number of queries does not grow with the number of pods.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import requests


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


class PromClient:
    """Thread-safe enough for concurrent queries: one requests.Session, a locked request counter."""

    def __init__(self, url: str, connection: Connection | None = None, timeout: float = 10.0) -> None:
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
        return set(data)

    def query_range(self, expr: str, start: float, end: float, step: float, timeout: float) -> list[dict]:
        params = {"query": expr, "start": start, "end": end, "step": step, "timeout": f"{timeout:g}s"}
        return self._get("/api/v1/query_range", params, timeout)["result"]

    def query(self, expr: str, at: float | None = None, timeout: float | None = None) -> list[Any]:
        """Instant query at `at` (default: the server's now); `data.result` (for scalars `[ts, "value"]`)."""
        timeout = self.timeout if timeout is None else timeout
        params: dict[str, Any] = {"query": expr, "timeout": f"{timeout:g}s"}
        if at is not None:
            params["time"] = at
        return self._get("/api/v1/query", params, timeout)["result"]

    # ---- transport -----------------------------------------------------------------------------

    def _get(self, path: str, params: dict[str, Any], timeout: float, post: bool = True) -> Any:
        with self._lock:
            self.requests += 1
        try:
            # POST form keeps long queries out of URLs (and proxy logs); every API above accepts it.
            limits = (min(timeout, 5.0), timeout + 1.0)
            r = (self.session.post(self.base + path, data=params, timeout=limits) if post
                 else self.session.get(self.base + path, params=params, timeout=limits))
        except requests.Timeout:
            raise QueryTimeout(f"no answer from {self.safe_url} within {timeout:g}s") from None
        except requests.ConnectionError as exc:
            raise Unreachable(f"cannot connect to {self.safe_url}: {_reason(exc)}") from None
        except requests.RequestException as exc:
            raise Unreachable(f"request to {self.safe_url} failed: {type(exc).__name__}") from None
        if r.status_code in (401, 403):
            raise Unreachable(f"{self.safe_url} refused the credentials (HTTP {r.status_code})")
        try:
            body = r.json()
        except ValueError:
            raise PrometheusError(f"{self.safe_url}{path}: HTTP {r.status_code}, not a Prometheus API answer") from None
        if body.get("status") != "success":
            kind, msg = body.get("errorType", "error"), str(body.get("error", ""))[:300]
            if kind == "timeout" or "timeout" in msg or "context deadline exceeded" in msg:
                raise QueryTimeout(f"query timed out on the server ({msg})")
            raise PrometheusError(f"{kind}: {msg}")
        return body["data"]


def _reason(exc: requests.ConnectionError) -> str:
    text = str(exc)
    for hint in ("Connection refused", "Name or service not known", "No route to host", "timed out",
                 "certificate verify failed", "Temporary failure in name resolution"):
        if hint in text:
            return hint.lower()
    return type(exc).__name__

