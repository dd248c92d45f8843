"""Where the webhook receiver delivers each diagnosis: a JSON-lines log, markdown files, a chat webhook.

A sink gets an `Outcome`, successful or failed: a failed diagnosis is delivered too, so the person paged
reads "diagnosis failed: Prometheus unreachable" instead of waiting for a report that never comes.
The report folder holds a markdown file and a self-contained HTML page (diagnose/html.py) per outcome;
the receiver serves the page at GET /reports/<id>, and the markdown and chat messages link to it.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from ..core.timefmt import iso

SLACK_TEXT_LIMIT = 3500  # Slack shows ~4000 characters of a message before "show more"


class Report(Protocol):
    """What `diagnose.engine.run` returns; the receiver needs only these two."""

    def to_dict(self) -> dict[str, Any]: ...

    def render(self, fmt: str) -> str: ...


@dataclass(frozen=True)
class Outcome:
    """One diagnosis attempt for one notification."""
    key: str                      # de-duplication key: group key plus alert fingerprints
    group_key: str
    status: str                   # firing | resolved
    alertnames: tuple[str, ...]
    scope: dict[str, str | None]  # namespace, workload, model, pod, cluster
    at: datetime                  # the moment diagnosed: the latest startsAt in the notification
    received_at: datetime
    duration_seconds: float
    report: Report | None = None
    error: str | None = None
    report_url: str | None = None  # where the receiver serves the HTML page, when it does

    @property
    def id(self) -> str:
        """Names the files of this outcome and its page under /reports/: time, alerts, hash of the key."""
        slug = re.sub(r"[^A-Za-z0-9]+", "-", "-".join(self.alertnames))[:80].strip("-") or "alert"
        digest = hashlib.sha256(self.key.encode()).hexdigest()[:10]
        return f"{self.at:%Y%m%dT%H%M%SZ}-{slug}-{digest}"

    @property
    def ok(self) -> bool:
        return self.error is None

    def title(self) -> str:
        where = "/".join(v for v in (self.scope.get("cluster"), self.scope.get("namespace"),
                                     self.scope.get("workload")) if v)
        extra = " ".join(f"{k}={self.scope[k]}" for k in ("model", "pod") if self.scope.get(k))
        return f"{', '.join(self.alertnames)} ({self.status}) {where} {extra}".strip()

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "group_key": self.group_key, "status": self.status,
                "alertnames": list(self.alertnames), "scope": self.scope, "at": iso(self.at, fraction=True),
                "received_at": iso(self.received_at, fraction=True), "duration_seconds": round(self.duration_seconds, 3),
                "outcome": "diagnosed" if self.ok else "failed", "error": self.error,
                "report": self.report.to_dict() if self.report is not None else None}

    def markdown(self) -> str:
        head = (f"# Diagnosis: {self.title()}\n\n"
                f"- diagnosed at: {iso(self.at, fraction=True)} (latest alert start)\n"
                f"- scope: {', '.join(f'{k}={v}' for k, v in self.scope.items() if v) or 'everything'}\n"
                f"- group key: `{self.group_key}`\n"
                + (f"- report with charts: {self.report_url}\n" if self.report_url else "") + "\n")
        if self.report is None:
            return head + f"**Diagnosis failed:** {self.error}\n"
        return head + self.report.render("markdown").rstrip() + "\n"

    def html(self) -> str:
        from .html import failure_page, page
        context = [("alerts", ", ".join(self.alertnames)), ("status", self.status), ("diagnosed at", iso(self.at, fraction=True)),
                   ("group key", self.group_key)]
        if self.report is None:
            return failure_page(self.title(), f"Diagnosis failed: {self.error}", context)
        return page(self.report, self.title(), context)


class JsonLinesSink:
    """Appends one JSON object per outcome; `-` writes to stdout."""
    name = "jsonl"

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()

    def deliver(self, outcome: Outcome) -> None:
        line = json.dumps(outcome.to_dict(), sort_keys=True, default=str) + "\n"
        with self._lock:
            if self.path == "-":
                sys.stdout.write(line)
                sys.stdout.flush()
                return
            with open(self.path, "a", encoding="utf-8", errors="backslashreplace") as f:
                f.write(line)


def write_atomic(path: Path, text: str) -> None:
    """Replace `path` with `text` or leave it as it was: written to a temporary file in the same folder,
    then renamed. Text that UTF-8 cannot hold (a lone surrogate from a JSON \\ud800) is backslash-escaped."""
    data = text.encode("utf-8", "backslashreplace")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class MarkdownDirSink:
    """The report folder: `<id>.html` and `<id>.md` per notification (names stable across restarts)."""
    name = "markdown"

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def path_for(self, outcome: Outcome, suffix: str = ".md") -> Path:
        return self.directory / f"{outcome.id}{suffix}"

    def page(self, report_id: str) -> Path | None:
        """The HTML page of a report id, if there is one (ids are checked: no path leaves the folder)."""
        if not REPORT_ID.fullmatch(report_id):
            return None
        path = self.directory / f"{report_id}.html"
        return path if path.is_file() else None

    def deliver(self, outcome: Outcome) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        for suffix, text in ((".html", outcome.html()), (".md", outcome.markdown())):  # the page first: .md links it
            write_atomic(self.path_for(outcome, suffix), text)  # readers never see half a report


REPORT_ID = re.compile(r"\d{8}T\d{6}Z-[A-Za-z0-9-]{1,80}-[0-9a-f]{10}")


class SlackSink:
    """POSTs `{"text": ...}` to a Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat)."""
    name = "slack"

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url  # a credential: never logged
        self.timeout = timeout

    def deliver(self, outcome: Outcome) -> None:
        text = outcome.markdown()
        if len(text) > SLACK_TEXT_LIMIT:
            text = text[:SLACK_TEXT_LIMIT] + "\n… (truncated; full report in the markdown/JSON sinks)"
        body = json.dumps({"text": text}).encode()
        req = urllib.request.Request(self.url, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                resp.read()
        except (OSError, ValueError) as exc:  # the URL is a credential: name only its host
            host = urllib.parse.urlsplit(self.url).hostname
            reason = exc.code if isinstance(exc, urllib.error.HTTPError) else getattr(exc, "reason", None)
            raise OSError(f"POST to the Slack webhook on {host} failed: {reason or type(exc).__name__}") from None


Sink = JsonLinesSink | MarkdownDirSink | SlackSink
