"""inferwatch/sandbox/remote_write.py: the rule benchmark's way into a real Prometheus' head, checked against one."""
from __future__ import annotations

import time

import pytest

from inferwatch.sandbox import remote_write
from inferwatch.sandbox.localprom import LocalPrometheus

NASTY = 'say "hi"\\path\nnext line, ünïcode'


@pytest.mark.parametrize("size, header", [(1, b"\x01\x00"), (60, b"\x3c\xec"), (61, b"\x3d\xf0\x3c"),
                                          (257, b"\x81\x02\xf4\x00\x01")])
def test_snappy_literal_header(size: int, header: bytes) -> None:
    """Length varint, then a literal tag: lengths up to 60 in the tag, longer ones in 1-4 bytes after it."""
    body = remote_write.snappy_literal(b"x" * size)
    assert body.startswith(header) and body.endswith(b"x" * size) and len(body) == len(header) + size


def test_varint() -> None:
    assert [remote_write.varint(n) for n in (0, 127, 128, 300)] == [b"\x00", b"\x7f", b"\x80\x01", b"\xac\x02"]


def test_batches_split_whole_series() -> None:
    series = [({"__name__": "m", "i": str(i)}, [(1.0, 1.0)]) for i in range(50)]
    bodies = list(remote_write.batches(series, limit=200))
    assert len(bodies) > 1
    assert b"".join(bodies) == b"".join(remote_write.batches(series, limit=1 << 30))


def test_push_lands_in_the_head() -> None:
    """Samples, nasty label values and a long body (a 3-byte literal length) arrive as written; shared
    sample lists (the cluster's copies) are encoded once and still land under each series."""
    now = time.time()
    shared = [(now - 60 + 15 * i, float(i)) for i in range(5)]
    series = [({"__name__": "bench_counter", "note": NASTY, "pod": "a"}, shared),
              ({"__name__": "bench_counter", "pod": "b"}, shared)]
    series += [({"__name__": "bench_filler", "i": str(i), "pad": "p" * 200}, [(now, 1.0)]) for i in range(400)]
    with LocalPrometheus(None, extra_args=["--web.enable-remote-write-receiver"]) as prom:
        assert remote_write.push(prom.url, series) == 10 + 400
        got = {r["metric"].get("pod"): r for r in prom.query("bench_counter", now)}
        assert got["a"]["metric"]["note"] == NASTY and got["a"]["value"][1] == "4"
        assert got["b"]["value"][1] == "4"
        assert prom.query("count(bench_filler)", now)[0]["value"][1] == "400"


def test_push_refused_names_the_answer() -> None:
    with LocalPrometheus(None) as prom:  # no receiver: 404
        with pytest.raises(RuntimeError, match="refused"):
            remote_write.push(prom.url, [({"__name__": "m"}, [(time.time(), 1.0)])])
