"""Bounds of a PromQL expression over a time frame, as one instant expression (interval arithmetic).

`bound(expr, hi=True, frame)` is an instant expression, evaluated once at the frame's end, whose value
for each output series is at least (hi) or at most (not hi) every value `expr` takes at any step of a
range query over the frame, and whose series include every series `expr` has at any step. So
`bound(s, hi=True) > c` keeps every series for which `s > c` can hold at some step: a necessary
condition that costs Prometheus one pass over each series' samples instead of an operator per series
and step (diagnose/screen.py reads 8,000 GPUs this way before a range query reads the few it kept).

Assumes what holds for the series inferwatch bounds: counters and gauges are never negative. Where an
operator has no bound written here the answer is None and the caller reads the expression as it is.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from .config import duration_seconds
from .promql import Agg, At, BinOp, Call, Expr, Num, Paren, Selector, Str, agg, children, is_info

_COUNTERS = ("rate", "increase")
_OVER_TIME = ("max_over_time", "min_over_time", "avg_over_time", "last_over_time")
_MONOTONE = ("label_replace", "clamp_min", "clamp_max")  # f(x) moves with x, other arguments constant
_SAFETY = 1.25  # rate() extrapolates up to about one scrape interval past its samples at each edge
_LOOKBACK = 300.0  # Prometheus' default lookback: an instant selector at step t reads a sample up to 5m old


@dataclass(frozen=True)
class Frame:
    """The steps a range query evaluates: `span` seconds ending at `at` (unix seconds)."""
    span: float
    at: float

    def covering(self, window: float) -> str:
        """The range that holds every sample an operator over `window` reads at any step."""
        return f"{int(round(self.span + window))}s"


def bound(expr: Expr, hi: bool, frame: Frame, keep: tuple[str, ...] = ()) -> Expr | None:
    """An upper (`hi`) or lower bound of `expr` over the frame (see the module's docstring), or None.

    An info series joined with `group_left` brings only the labels in `keep` (and those matched on),
    and is left out when it brings none of them: over a frame one GPU may have had two pods, and the
    bound keeps one series per GPU (without the join, of every GPU, whichever pod it served)."""
    if pinned(expr):
        return expr
    if isinstance(expr, Paren):
        inner = bound(expr.expr, hi, frame, keep)
        return None if inner is None else Paren(inner)
    if isinstance(expr, Selector):
        if expr.range or expr.offset:
            return None
        func = "max_over_time" if hi else "min_over_time"
        return Call(func, (At(expr, frame.covering(_LOOKBACK), "", frame.at),))
    if isinstance(expr, Call):
        return _call(expr, hi, frame, keep)
    if isinstance(expr, Agg):
        return _agg(expr, hi, frame, keep)
    if isinstance(expr, BinOp):
        return _binop(expr, hi, frame, keep)
    return None


def pinned(expr: Expr) -> bool:
    """True when `expr` has the same value at every step: numbers, and subqueries pinned with `@`."""
    if isinstance(expr, (Num, Str, At)):
        return True
    if isinstance(expr, Selector):
        return False
    return all(pinned(c) for c in children(expr))


def _call(expr: Call, hi: bool, frame: Frame, keep: tuple[str, ...]) -> Expr | None:
    args = expr.args
    if expr.func in _COUNTERS and isinstance(args[0], Selector) and args[0].range and not args[0].offset:
        sel = args[0]
        window = duration_seconds(sel.range)
        total = Call("increase", (At(replace(sel, range=None), frame.covering(window), "", frame.at),))
        if not hi:
            return total * 0  # the series' own zero: counters only grow
        return total * (_SAFETY / (window if expr.func == "rate" else 1.0))
    if expr.func in _OVER_TIME and isinstance(args[0], Selector) and args[0].range and not args[0].offset:
        sel = args[0]
        func = "max_over_time" if hi else "min_over_time"
        return Call(func, (At(replace(sel, range=None), frame.covering(duration_seconds(sel.range)), "", frame.at),))
    if expr.func in _MONOTONE and args and all(pinned(a) for a in args[1:]):
        inner = bound(args[0], hi, frame, keep)
        return None if inner is None else replace(expr, args=(inner, *args[1:]))
    return None


def _agg(expr: Agg, hi: bool, frame: Frame, keep: tuple[str, ...]) -> Expr | None:
    """Per group: the largest upper (smallest lower) bound of its members, whichever members a step
    had; a sum adds every member's upper bound (values are not negative)."""
    if expr.param is not None and not pinned(expr.param):
        return None
    inner = bound(expr.expr, hi, frame, keep)
    if inner is None:
        return None
    if expr.op == "group":
        return replace(expr, expr=inner)
    if expr.op in ("max", "min", "avg", "quantile"):
        return Agg("max" if hi else "min", inner, expr.by, expr.without)
    if expr.op == "sum" and hi:
        return replace(expr, expr=inner)
    return None


def _binop(expr: BinOp, hi: bool, frame: Frame, keep: tuple[str, ...]) -> Expr | None:
    lhs, rhs, op = expr.lhs, expr.rhs, expr.op
    if expr.bool_:
        return None
    if op in ("and", "unless"):
        kept = bound(lhs, hi, frame, keep)
        if kept is None or op == "unless":  # dropping `unless` keeps more series: still a bound
            return kept
        other = bound(rhs, True, frame, keep)
        return kept if other is None else replace(expr, lhs=kept, rhs=other)
    if op == "or":  # a series of the left operand in the frame is taken to be there at every step
        a, b = bound(lhs, hi, frame, keep), bound(rhs, hi, frame, keep)
        return None if a is None or b is None else replace(expr, lhs=a, rhs=b)
    if op in (">", ">=", "<", "<="):
        return _comparison(expr, hi, frame, keep)
    if op == "*" and expr.group_left is not None and is_info(rhs):
        left = bound(lhs, hi, frame, keep)
        labels = tuple(k for k in expr.group_left if k in keep)
        if left is None or not labels:  # the info adds no label wanted: the bound of every GPU's field
            return left
        info = bound(rhs, True, frame, keep)
        if info is None:
            return None
        return replace(expr, lhs=left, rhs=agg("group", info, tuple(expr.on or ()) + labels), group_left=labels)
    if isinstance(rhs, Num) or isinstance(lhs, Num):
        return _with_number(expr, hi, frame, keep)
    rest = _share(lhs, rhs) if op == "/" else None
    if rest is not None:  # a / (a + b) = 1 / (1 + b / a): reads a once
        return bound(Num(1) / (Num(1) + rest / lhs), hi, frame, keep)
    flip = op in ("-", "/")  # the right operand's opposite bound
    a, b = bound(lhs, hi, frame, keep), bound(rhs, hi != flip, frame, keep)
    if op not in ("+", "-", "*", "/") or a is None or b is None:
        return None
    return replace(expr, lhs=a, rhs=b)


def _with_number(expr: BinOp, hi: bool, frame: Frame, keep: tuple[str, ...]) -> Expr | None:
    lhs, rhs, op = expr.lhs, expr.rhs, expr.op
    number, vector, left = (rhs, lhs, True) if isinstance(rhs, Num) else (lhs, rhs, False)
    k = number.value
    if op == "+" or (op == "-" and left):
        same = True
    elif op == "*" or (op == "/" and left):
        if k < 0:
            return None
        same = True
    elif op == "-" or (op == "/" and k >= 0):  # k - x, k / x (x > 0)
        same = False
    else:
        return None
    inner = bound(vector, hi if same else not hi, frame, keep)
    if inner is None:
        return None
    return replace(expr, lhs=inner) if left else replace(expr, rhs=inner)


def _comparison(expr: BinOp, hi: bool, frame: Frame, keep: tuple[str, ...]) -> Expr | None:
    """A filter: its bound toward the compared number keeps only the series that can pass; the other
    bound keeps every series that has one (more, never fewer) and is clamped at the number."""
    lhs, rhs, op = expr.lhs, expr.rhs, expr.op
    if not isinstance(rhs, Num):
        return None
    upward = op in (">", ">=")
    if hi == upward:
        passing = bound(lhs, upward, frame, keep)
        return None if passing is None else replace(expr, lhs=passing)
    other = bound(lhs, hi, frame, keep)  # its series include those that pass
    return None if other is None else Call("clamp_min" if upward else "clamp_max", (other, rhs))


def _share(a: Expr, total: Expr) -> Expr | None:
    """b when `total` is `a + b` (or `a + b > 0`, a filter that keeps positive totals), else None."""
    if isinstance(total, BinOp) and total.op == ">" and isinstance(total.rhs, Num) and total.rhs.value == 0:
        total = total.lhs
    if isinstance(total, BinOp) and total.op == "+" and total.on is None and total.lhs == a:
        return total.rhs
    return None
