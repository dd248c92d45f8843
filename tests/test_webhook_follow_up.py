"""The receiver's second look: a page that arrives before a symptom can be judged is diagnosed again once
the alerts' start is `diagnose.min_persistence` x `diagnose.window` old (here 0.3 x 10s = 3s), in real time.
The diagnosis function records its calls; the engine itself is tested against real Prometheus elsewhere."""
from __future__ import annotations

import dataclasses
import json
import time
from datetime import datetime, timedelta, timezone

from test_webhook import payload, wait_for
from inferwatch.core.config import Config, Duration
from inferwatch.diagnose.ranking import RootCause
from inferwatch.diagnose.report import Report
from inferwatch.diagnose.sinks import JsonLinesSink
from inferwatch.diagnose.webhook import Receiver, parse_notification

CFG = dataclasses.replace(Config(), diagnose=dataclasses.replace(Config().diagnose, window=Duration("10s")))


def report(at: datetime, causes: list) -> Report:
    return Report("healthy" if not causes else "degraded", {}, at.timestamp(), "10s", [], causes, {}, {}, [], 0, 0.0)


def test_an_early_page_with_no_cause_is_looked_at_again_once_settled(tmp_path):
    calls: list[datetime] = []

    def diagnose(scope, at):
        calls.append(at)
        return report(at, [])

    receiver = Receiver(CFG, diagnose, [JsonLinesSink(str(tmp_path / "out.jsonl"))]).start()
    try:
        start = datetime.now(timezone.utc).replace(microsecond=0)
        body = payload(starts=start.strftime("%Y-%m-%dT%H:%M:%SZ"))
        assert receiver.submit(parse_notification(json.dumps(body).encode()))[0] == 202
        wait_for(lambda: len(calls) == 2, timeout=10, what="the follow-up diagnosis")
        assert calls[0] <= start + timedelta(seconds=1)
        assert calls[1] == start + timedelta(seconds=3)  # 0.3 x 10s after the alerts' start
        time.sleep(4)
        assert len(calls) == 2, "one follow-up, never a chain"
    finally:
        receiver.stop(10)


def test_a_settled_first_look_is_followed_at_once_and_a_named_cause_is_not_looked_at_again(tmp_path):
    calls: list[datetime] = []

    def diagnose(scope, at):
        calls.append(at)
        cause = RootCause("kv_cache_pressure", "pod", 1.0, [], [("kv_cache_pressure",)], at.timestamp(), None, False)
        return report(at, [cause] if scope.get("pod") == "named" else [])

    receiver = Receiver(CFG, diagnose, [JsonLinesSink(str(tmp_path / "out.jsonl"))]).start()
    try:
        old = payload(starts="2026-01-01T01:50:00Z")  # long past: the follow-up is due at once
        named = payload(starts="2026-01-01T02:00:00Z", fingerprint="b2", pod="named")
        for body in (old, named):
            assert receiver.submit(parse_notification(json.dumps(body).encode()))[0] == 202
        wait_for(lambda: len(calls) >= 3, timeout=10, what="two diagnoses and one follow-up")
        time.sleep(1)
        assert sorted(c.isoformat() for c in calls) == ["2026-01-01T01:50:00+00:00", "2026-01-01T01:50:03+00:00",
                                                        "2026-01-01T02:00:00+00:00"]
    finally:
        receiver.stop(10)
