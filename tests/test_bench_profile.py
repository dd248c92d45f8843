"""bench/profile.py: a Go CPU profile decoded by hand and charged to categories, leaf first."""
from __future__ import annotations

import gzip

from bench import profile
from inferwatch.sandbox.remote_write import field, varint


def _varint_field(tag: int, n: int) -> bytes:
    return bytes((tag << 3,)) + varint(n)


def make_profile(samples: list[tuple[list[str], int]]) -> bytes:
    """A profile.proto with one function and one location per distinct name; stacks leaf first."""
    names = sorted({n for stack, _ in samples for n in stack})
    strings = [""] + names
    ids = {n: i + 1 for i, n in enumerate(names)}
    out = [field(6, s.encode()) for s in strings]
    for n, i in ids.items():
        out.append(field(5, _varint_field(1, i) + _varint_field(2, strings.index(n))))
        out.append(field(4, _varint_field(1, i) + field(4, _varint_field(1, i))))
    for stack, cpu in samples:
        packed = b"".join(varint(ids[n]) for n in stack)
        out.append(field(2, field(1, packed) + field(2, varint(1) + varint(cpu))))
    return gzip.compress(b"".join(out))


def test_breakdown_charges_the_innermost_category() -> None:
    select = ["runtime.memmove", "github.com/prometheus/prometheus/tsdb/index.(*Decoder).Series",
              "github.com/prometheus/prometheus/promql.expandSeriesSet", "rules.(*Group).Eval.func1"]
    alloc = ["runtime.mallocgc", "github.com/prometheus/prometheus/tsdb/index.(*Decoder).Series",
             "rules.(*Group).Eval.func1"]
    gc = ["runtime.scanobject", "runtime.gcDrain", "runtime.gcBgMarkWorker"]
    seconds, shares = profile.breakdown(make_profile([(select, 3 * 10**9), (alloc, 10**9), (gc, 4 * 10**9),
                                                      (["net/http.(*conn).serve"], 2 * 10**9)]))
    assert seconds == 10.0
    assert shares == [("garbage collection", 0.4), ("selecting series (index, labels)", 0.3),
                      (profile.OTHER, 0.2), ("allocation", 0.1)]


def test_stacks_reads_names_leaf_first() -> None:
    stack = ["a.leaf", "b.middle", "c.root"]
    assert profile.stacks(make_profile([(stack, 7)])) == [(stack, 7)]
