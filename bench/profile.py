"""Where a Prometheus process spends its CPU, from its own Go CPU profile (/debug/pprof/profile).

The profile is a gzipped `profile.proto`; the few fields read here (samples, locations, functions, the
string table) are decoded by hand, so the benchmark needs neither protobuf nor Go's pprof tool. Each
sample is charged to the first category its stack meets, leaf first: an allocation made while selecting
series counts as allocation, and garbage collection is its own line.
"""
from __future__ import annotations

import gzip
from collections import Counter
from typing import Iterator

import requests

# (category, function-name fragments), matched leaf first: the innermost matching frame decides.
CATEGORIES = (
    ("garbage collection", ("runtime.gcBgMarkWorker", "runtime.gcAssistAlloc", "runtime.bgsweep",
                            "runtime.bgscavenge", "runtime.gcMarkTermination", "runtime.markroot")),
    ("allocation", ("runtime.mallocgc", "runtime.growslice", "runtime.makeslice", "runtime.makemap",
                    "runtime.newobject", "runtime.mapassign")),
    ("appending results (head, WAL)", ("tsdb.(*headAppender)", "tsdb/wlog.", "storage.(*fanoutAppender)",
                                       "rules.(*Group).Eval.func1")),
    ("decoding samples, rate", ("tsdb/chunkenc.", "promql.funcRate", "promql.extrapolatedRate",
                                "promql.(*evaluator).matrixIterSlice", "promql.funcMaxOverTime",
                                "promql.aggrOverTime", "promql.(*evaluator).vectorSelectorSingle")),
    ("selecting series (index, labels)", ("tsdb/index.", "tsdb.PostingsForMatchers", "tsdb.(*blockBaseSeriesSet)",
                                          "tsdb.(*headIndexReader)", "tsdb.(*blockSeriesSet)",
                                          "storage.(*genericMergeSeriesSet)", "storage.(*lazyGenericSeriesSet)",
                                          "promql.expandSeriesSet", "tsdb.(*blockQuerier)", "tsdb.(*Head)")),
    ("PromQL operators", ("promql.",)),
)
OTHER = "other (HTTP, scheduling, runtime)"


def fetch(url: str, seconds: int) -> bytes:
    """A CPU profile of the next `seconds` of the Prometheus at `url`."""
    r = requests.get(f"{url}/debug/pprof/profile", params={"seconds": seconds}, timeout=seconds + 120)
    r.raise_for_status()
    return r.content


def _varint(b: bytes, i: int) -> tuple[int, int]:
    x = shift = 0
    while True:
        c = b[i]
        i += 1
        x |= (c & 0x7F) << shift
        shift += 7
        if c < 0x80:
            return x, i


def _fields(b: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) of a protobuf message."""
    i = 0
    while i < len(b):
        key, i = _varint(b, i)
        wire = key & 7
        if wire == 0:
            value, i = _varint(b, i)
        elif wire == 2:
            n, i = _varint(b, i)
            value, i = b[i:i + n], i + n
        elif wire in (1, 5):
            n = 8 if wire == 1 else 4
            value, i = b[i:i + n], i + n
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield key >> 3, wire, value


def _ints(value: int | bytes, wire: int) -> list[int]:
    """A repeated integer field, packed or not."""
    if wire == 0:
        return [int(value)]  # type: ignore[arg-type]
    out, i = [], 0
    while i < len(value):  # type: ignore[arg-type]
        x, i = _varint(value, i)  # type: ignore[arg-type]
        out.append(x)
    return out


def stacks(data: bytes) -> list[tuple[list[str], int]]:
    """(function names leaf first, CPU nanoseconds) per sample of a CPU profile."""
    body = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    strings: list[str] = []
    samples: list[tuple[list[int], int]] = []
    locations: dict[int, list[int]] = {}
    functions: dict[int, int] = {}
    for field, wire, value in _fields(body):
        if field == 6:  # string_table
            strings.append(value.decode("utf-8", "replace"))  # type: ignore[union-attr]
        elif field == 2:  # sample: location ids, values (the last is CPU nanoseconds)
            ids, values = [], []
            for f, w, v in _fields(value):  # type: ignore[arg-type]
                (ids if f == 1 else values if f == 2 else []).extend(_ints(v, w))
            samples.append((ids, values[-1] if values else 0))
        elif field == 4:  # location: id, lines (each naming a function)
            lid, funcs = 0, []
            for f, w, v in _fields(value):  # type: ignore[arg-type]
                if f == 1:
                    lid = int(v)  # type: ignore[arg-type]
                elif f == 4:
                    funcs += [int(x) for g, _, x in _fields(v) if g == 1]  # type: ignore[arg-type, misc]
            locations[lid] = funcs
        elif field == 5:  # function: id, name (a string index)
            fields = {f: v for f, _, v in _fields(value)}  # type: ignore[arg-type]
            functions[int(fields.get(1, 0))] = int(fields.get(2, 0))  # type: ignore[arg-type]
    return [([strings[functions[f]] for loc in ids for f in locations.get(loc, ())], cpu) for ids, cpu in samples]


def breakdown(data: bytes) -> tuple[float, list[tuple[str, float]]]:
    """Profiled CPU seconds and each category's share of them, largest first."""
    spent: Counter[str] = Counter()
    for names, cpu in stacks(data):
        spent[next((cat for name in names for cat, marks in CATEGORIES if any(m in name for m in marks)), OTHER)] += cpu
    total = sum(spent.values())
    return total / 1e9, [(cat, ns / total) for cat, ns in spent.most_common()] if total else []
