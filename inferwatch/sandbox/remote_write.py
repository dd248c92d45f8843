"""Push series into a running Prometheus through its remote-write receiver, so they land in the head
(bench/bench_rules.py --storage head).

Why not backfill: a live Prometheus evaluates its rules on the head (the last hours, in memory), with
every rate window full; backfilled blocks decode each selected series' labels from the block index and,
loaded just before a run, hold partly filled windows (docs/benchmarks.md compares both). Remote write 1.0 is a
snappy-compressed protobuf `WriteRequest`; both encodings are small enough to write here (no protobuf or
snappy dependency for a benchmark): the body is one snappy literal, which every decoder accepts.
"""
from __future__ import annotations

import struct
from functools import lru_cache
from typing import Iterable, Sequence

import requests

from inferwatch.sandbox.scenario import Series

BATCH_BYTES = 8 << 20  # uncompressed bytes per request; Prometheus decodes each request at once
HEADERS = {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf",
           "X-Prometheus-Remote-Write-Version": "0.1.0"}
_DOUBLE = struct.Struct("<d")


def varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def field(tag: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (wire type 2)."""
    return bytes((tag << 3 | 2,)) + varint(len(payload)) + payload


@lru_cache(maxsize=1 << 18)
def _label(name: str, value: str) -> bytes:
    return field(1, field(1, name.encode()) + field(2, value.encode()))


def _samples(samples: Sequence[tuple[float, float]]) -> bytes:
    return b"".join(field(2, b"\x09" + _DOUBLE.pack(v) + b"\x10" + varint(round(t * 1000))) for t, v in samples)


def timeseries(labels: dict[str, str], samples: Sequence[tuple[float, float]],
               encoded: dict[int, tuple[object, bytes]]) -> bytes:
    """prometheus.TimeSeries: labels sorted by name (as Prometheus keeps them), samples in time order,
    timestamps in milliseconds. `encoded` caches sample lists by identity (the list is kept, so its id
    stays its own): a simulated cluster's copies share their template's lists (bench/cluster.py), so each
    is encoded once."""
    hit = encoded.get(id(samples))
    if hit is None or hit[0] is not samples:
        hit = encoded[id(samples)] = (samples, _samples(samples))
    return b"".join([_label(k, v) for k, v in sorted(labels.items())]) + hit[1]


def snappy_literal(data: bytes) -> bytes:
    """`data` in the snappy block format, as a single literal (valid, just not compressed)."""
    n = len(data) - 1
    if n < 60:
        tag = bytes((n << 2,))
    else:
        size = (n.bit_length() + 7) // 8
        tag = bytes(((59 + size) << 2,)) + n.to_bytes(size, "little")
    return varint(len(data)) + tag + data


def batches(series: Iterable[Series], limit: int = BATCH_BYTES,
            encoded: dict[int, tuple[object, bytes]] | None = None) -> Iterable[bytes]:
    """WriteRequest bodies (uncompressed) of at most about `limit` bytes, each series whole in one;
    `encoded` as in `timeseries`, kept across calls by the caller."""
    buf, size, encoded = [], 0, {} if encoded is None else encoded
    for labels, samples in series:
        ts = field(1, timeseries(labels, samples, encoded))
        buf.append(ts)
        size += len(ts)
        if size >= limit:
            yield b"".join(buf)
            buf, size = [], 0
    if buf:
        yield b"".join(buf)


def push(url: str, series: Iterable[Series], session: requests.Session | None = None,
         encoded: dict[int, tuple[object, bytes]] | None = None) -> int:
    """Write `series` to the Prometheus at `url` (started with --web.enable-remote-write-receiver);
    returns the sample count. Raises RuntimeError with Prometheus' answer when a request is refused."""
    http = session or requests.Session()
    total = 0

    def counted(items: Iterable[Series]) -> Iterable[Series]:
        nonlocal total
        for labels, samples in items:
            total += len(samples)
            yield labels, samples
    for body in batches(counted(series), encoded=encoded):
        r = http.post(url + "/api/v1/write", data=snappy_literal(body), headers=HEADERS, timeout=600)
        if r.status_code // 100 != 2:
            raise RuntimeError(f"remote write to {url} refused ({r.status_code}): {r.text.strip()[:300]}")
    return total
