"""A small typed PromQL expression tree.

Queries are built from data (metric names, label matchers, groupings) and rendered to text only at the
end, so a label value that comes from a user or an alert is always escaped and can never change the shape
of a query. `check()` parses the rendered text with promql-parser and fails loudly on anything that does
not parse. `inline()` rewrites a tree, replacing recorded series by the expressions that record them.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Callable, Iterable, Sequence

import promql_parser


def escape_value(value: str) -> str:
    """A label value inside double quotes: the one escaper for PromQL strings, OpenMetrics label values
    and Alertmanager matchers (all three read backslash, quote and newline escapes alike)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")


def quote(value: str) -> str:
    """A PromQL double-quoted string literal for any value (quotes, backslashes, newlines)."""
    return f'"{escape_value(value)}"'


def regex_escape(text: str) -> str:
    """An RE2 pattern matching exactly `text`: metacharacters only (re.escape also escapes `-`, which
    reads badly in rules). The Matcher quotes the result for PromQL."""
    return re.sub(r"([.^$*+?()\[\]{}|\\])", r"\\\1", text)


def number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


class Expr:
    """Base class; subclasses render themselves with `str()`."""

    precedence = 100  # atoms bind tightest

    def render(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def __str__(self) -> str:
        return self.render()

    # Operator sugar keeps rule definitions readable: a / b, a > 0, a.and_(b).
    def __truediv__(self, other): return BinOp("/", self, _lift(other))
    def __mul__(self, other): return BinOp("*", self, _lift(other))
    def __add__(self, other): return BinOp("+", self, _lift(other))
    def __sub__(self, other): return BinOp("-", self, _lift(other))
    def __gt__(self, other): return BinOp(">", self, _lift(other))
    def __ge__(self, other): return BinOp(">=", self, _lift(other))
    def __lt__(self, other): return BinOp("<", self, _lift(other))
    def __le__(self, other): return BinOp("<=", self, _lift(other))

    def or_(self, other: "Expr") -> "BinOp":
        return BinOp("or", self, other)

    def and_(self, other: "Expr", on: Sequence[str] | None = None) -> "BinOp":
        return BinOp("and", self, other, on=tuple(on) if on is not None else None)

    def unless(self, other: "Expr", on: Sequence[str] | None = None) -> "BinOp":
        return BinOp("unless", self, other, on=tuple(on) if on is not None else None)


def _lift(value) -> Expr:
    return value if isinstance(value, Expr) else Num(float(value))


@dataclass(frozen=True)
class Matcher:
    name: str
    value: str
    op: str = "="  # one of = != =~ !~

    def render(self) -> str:
        return f"{self.name}{self.op}{quote(self.value)}"

    @classmethod
    def one_of(cls, name: str, values: Iterable[str]) -> "Matcher":
        """`name` equal to one of `values` (sorted, regex-escaped, alternatives kept apart)."""
        return cls(name, "|".join(regex_escape(v) for v in sorted(set(values))), "=~")


def matchers_from(spec: dict[str, str] | None) -> tuple[Matcher, ...]:
    """Matchers from a mapping; a value starting with `~` is a regex, `!` a negation, `!~` both."""
    out = []
    for name, raw in sorted((spec or {}).items()):
        raw = str(raw)
        if raw.startswith("!~"):
            out.append(Matcher(name, raw[2:], "!~"))
        elif raw.startswith("~"):
            out.append(Matcher(name, raw[1:], "=~"))
        elif raw.startswith("!"):
            out.append(Matcher(name, raw[1:], "!="))
        else:
            out.append(Matcher(name, raw, "="))
    return tuple(out)


@dataclass(frozen=True)
class Selector(Expr):
    metric: str
    matchers: tuple[Matcher, ...] = ()
    range: str | None = None  # e.g. "5m" makes it a range selector
    offset: str | None = None

    def render(self) -> str:
        inner = ", ".join(m.render() for m in self.matchers)
        text = self.metric + (f"{{{inner}}}" if inner else "")
        if self.range:
            text += f"[{self.range}]"
        if self.offset:
            text += f" offset {self.offset}"
        return text

    def with_matchers(self, *extra: Matcher) -> "Selector":
        return replace(self, matchers=self.matchers + tuple(extra))

    def over(self, window: str) -> "Selector":
        return replace(self, range=window)


@dataclass(frozen=True)
class Num(Expr):
    value: float

    def render(self) -> str:
        return number(self.value)


@dataclass(frozen=True)
class Str(Expr):
    value: str

    def render(self) -> str:
        return quote(self.value)


@dataclass(frozen=True)
class Call(Expr):
    func: str
    args: tuple[Expr, ...]

    def render(self) -> str:
        return f"{self.func}({', '.join(a.render() for a in self.args)})"


@dataclass(frozen=True)
class Subquery(Expr):
    expr: Expr
    range: str
    step: str = ""
    offset: str | None = None

    def render(self) -> str:
        return f"({self.expr.render()})[{self.range}:{self.step}]" + (f" offset {self.offset}" if self.offset else "")


@dataclass(frozen=True)
class At(Expr):
    """`(expr)[range:step] @ t`: a subquery pinned to one instant (step-invariant, evaluated once);
    over a plain selector, the range selector `sel[range] @ t`."""
    expr: Expr
    range: str
    step: str
    at: float

    def render(self) -> str:
        if isinstance(self.expr, Selector) and not self.expr.range:
            return f"{self.expr.render()}[{self.range}] @ {self.at:.3f}"
        return f"({self.expr.render()})[{self.range}:{self.step}] @ {self.at:.3f}"


@dataclass(frozen=True)
class Agg(Expr):
    op: str  # sum, max, min, avg, count, group, topk, quantile, stddev
    expr: Expr
    by: tuple[str, ...] | None = None
    without: tuple[str, ...] | None = None
    param: Expr | None = None

    def render(self) -> str:
        grouping = ""
        if self.by is not None:
            grouping = f" by ({', '.join(self.by)})"
        elif self.without is not None:
            grouping = f" without ({', '.join(self.without)})"
        param = f"{self.param.render()}, " if self.param is not None else ""
        return f"{self.op}{grouping} ({param}{self.expr.render()})"


_PRECEDENCE = {"or": 1, "and": 2, "unless": 2, "==": 3, "!=": 3, ">": 3, "<": 3, ">=": 3, "<=": 3,
               "+": 4, "-": 4, "*": 5, "/": 5, "%": 5, "^": 6}


@dataclass(frozen=True)
class BinOp(Expr):
    op: str
    lhs: Expr
    rhs: Expr
    on: tuple[str, ...] | None = None
    ignoring: tuple[str, ...] | None = None
    group_left: tuple[str, ...] | None = None
    group_right: tuple[str, ...] | None = None
    bool_: bool = False

    @property
    def precedence(self) -> int:  # type: ignore[override]
        return _PRECEDENCE[self.op]

    def render(self) -> str:
        mod = " bool" if self.bool_ else ""
        if self.on is not None:
            mod += f" on ({', '.join(self.on)})"
        elif self.ignoring is not None:
            mod += f" ignoring ({', '.join(self.ignoring)})"
        if self.group_left is not None:
            mod += f" group_left ({', '.join(self.group_left)})"
        elif self.group_right is not None:
            mod += f" group_right ({', '.join(self.group_right)})"
        # Parenthesise operands that bind looser (or equal on the right: PromQL is left-associative).
        left, right = self.lhs.render(), self.rhs.render()
        if self.lhs.precedence < self.precedence:
            left = f"({left})"
        if self.rhs.precedence <= self.precedence and isinstance(self.rhs, BinOp):
            right = f"({right})"
        return f"{left} {self.op}{mod} {right}"


# ---- helpers that read like PromQL ------------------------------------------------------------

def rate(sel: Selector, window: str) -> Call:
    return Call("rate", (sel.over(window),))


def increase(sel: Selector, window: str) -> Call:
    return Call("increase", (sel.over(window),))


def over_time(func: str, expr: Expr, window: str) -> Call:
    """`<func>_over_time` of a selector (range selector) or any expression (subquery)."""
    arg = expr.over(window) if isinstance(expr, Selector) else Subquery(expr, window)
    return Call(f"{func}_over_time", (arg,))


def agg(op: str, expr: Expr, by: Iterable[str] | None = None, *, without: Iterable[str] | None = None) -> Agg:
    return Agg(op, expr, by=tuple(by) if by is not None else None,
               without=tuple(without) if without is not None else None)


def set_label(expr: Expr, name: str, value: str) -> Call:
    """`expr` with label `name` set to the literal `value`. label_replace expands `$1` and `$name` in
    its replacement, so `$` is doubled: a value from a user or an alert stays exactly what it was."""
    return label_replace(expr, name, value.replace("$", "$$"), "", "")


def label_replace(expr: Expr, dst: str, replacement: str, src: str, regex: str) -> Call:
    return Call("label_replace", (expr, Str(dst), Str(replacement), Str(src), Str(regex)))


def histogram_quantile(q: float, buckets: Expr) -> Call:
    return Call("histogram_quantile", (Num(q), buckets))


def any_of(exprs: Sequence[Expr]) -> Expr:
    """`a or b or c`: the first source that has data wins for a given label set."""
    if not exprs:
        raise ValueError("any_of needs at least one expression")
    out = exprs[0]
    for e in exprs[1:]:
        out = BinOp("or", out, e)
    return out


def positive(expr: Expr) -> BinOp:
    """`expr > 0`: the zero-traffic guard for denominators (no NaN, no division by zero)."""
    return BinOp(">", expr, Num(0))


# ---- validation and rewriting -----------------------------------------------------------------

class PromQLError(ValueError):
    pass


def check(expr: Expr | str) -> str:
    """Render and parse; returns the text. Raises PromQLError naming the query on a parse error."""
    text = expr if isinstance(expr, str) else expr.render()
    try:
        promql_parser.parse(text)
    except Exception as exc:  # the binding raises plain ValueError/RuntimeError
        raise PromQLError(f"invalid PromQL: {exc}\n  query: {text}") from None
    return text


def selectors(expr: Expr) -> list[Selector]:
    """Every selector in a tree, in order."""
    found: list[Selector] = []
    walk(expr, lambda e: found.append(e) if isinstance(e, Selector) else None)
    return found


def walk(expr: Expr, visit: Callable[[Expr], None]) -> None:
    visit(expr)
    for child in children(expr):
        walk(child, visit)


def children(expr: Expr) -> tuple[Expr, ...]:
    if isinstance(expr, Call):
        return expr.args
    if isinstance(expr, Agg):
        return (expr.expr,) + ((expr.param,) if expr.param is not None else ())
    if isinstance(expr, BinOp):
        return (expr.lhs, expr.rhs)
    if isinstance(expr, (Subquery, Paren, At)):
        return (expr.expr,)
    return ()


def transform(expr: Expr, fn: Callable[[Expr], Expr | None]) -> Expr:
    """Bottom-up rewrite: `fn` returns a replacement node or None to keep it."""
    if isinstance(expr, Call):
        expr = replace(expr, args=tuple(transform(a, fn) for a in expr.args))
    elif isinstance(expr, Agg):
        expr = replace(expr, expr=transform(expr.expr, fn),
                       param=transform(expr.param, fn) if expr.param is not None else None)
    elif isinstance(expr, BinOp):
        expr = replace(expr, lhs=transform(expr.lhs, fn), rhs=transform(expr.rhs, fn))
    elif isinstance(expr, (Subquery, Paren, At)):
        expr = replace(expr, expr=transform(expr.expr, fn))
    out = fn(expr)
    return expr if out is None else out


_NESTABLE = ("sum", "max", "min")  # op by (A) (op by (B) (x)) == op by (A) (x) for A within B
_KEPT_PREFIX = "inferwatch_before_fill_"  # a group's own value of a label a fill writes (`_refill`)


def aggregate_once(expr: Expr) -> Expr:
    """Aggregate once where an inlined record aggregated to finer keys first: in
    `sum by (M) (A or label_replace(sum by (P) (x), "l", ...))`, with M within P and `l` in M, the
    alternative becomes `label_replace(sum by (M) (x), ...)`. Same values; Prometheus builds a label set
    per M group instead of one per pod and bucket. An alternative that is itself an `or` (an engine's
    metric names across versions) stays per pod, so each pod still picks its own name, and is summed to M
    under its label_replace: `label_replace(sum by (M) (sum by (P) (x) or sum by (P) (y)), "l", ...)`.
    Alternatives of different engines carry their own `backend` (in M), so they do not meet at M either."""
    def swap(node: Expr) -> Expr | None:
        if not _plain_agg(node):
            return None
        alternatives = _or_chain(node.expr)
        narrowed = [_aggregated_once(a, node) for a in alternatives]
        if all(n is None for n in narrowed):
            return None
        if len(narrowed) == 1 and isinstance(narrowed[0], Agg):
            return narrowed[0]  # op by (M) (op by (M) (x)): once is enough
        return replace(node, expr=any_of([n or a for n, a in zip(narrowed, alternatives)]))
    return transform(expr, swap)


def _aggregated_once(alternative: Expr, outer: Agg) -> Expr | None:
    body, fill = _bare(alternative), None
    if isinstance(body, Call) and body.func == "label_replace" and all(isinstance(a, Str) for a in body.args[1:]):
        if not {body.args[1].value, body.args[3].value} <= set(outer.by or ()):
            return None
        fill, body = body, _bare(body.args[0])
    names = _or_chain(body)
    if fill is not None and len(names) > 1 and all(_finer(n, outer) for n in names):
        # an engine's metric names across versions: each pod picks its name, then one sum to the outer keys
        return _refill(fill, replace(outer, expr=body))
    if not _finer(body, outer):
        return None
    narrowed: Expr = replace(body, by=outer.by)
    return _refill(fill, narrowed) if fill is not None else narrowed


def _refill(fill: Call, narrowed: Expr) -> Expr:
    """`fill` (a label_replace) applied to groups instead of pods. Groups the fill would merge (pods
    without the label beside pods that carry the value it writes, mid-rollout) must not become one label
    set, which Prometheus refuses: the value a group had is kept aside in a label the outer aggregation
    drops, so it adds them up instead."""
    dst = fill.args[1].value
    kept = label_replace(narrowed, f"{_KEPT_PREFIX}{dst}", "$1", dst, "(.+)")
    return replace(fill, args=(kept, *fill.args[1:]))


def _finer(node: Expr, outer: Agg) -> bool:
    """`node` aggregates like `outer`, to keys that include all of outer's and more."""
    return _plain_agg(node) and node.op == outer.op and set(outer.by) < set(node.by)


def _or_chain(expr: Expr) -> list[Expr]:
    """The alternatives of `a or b or c` (plain `or`, no vector matching), in order."""
    expr = _bare(expr)
    if isinstance(expr, BinOp) and expr.op == "or" and expr.on is None and expr.ignoring is None:
        return _or_chain(expr.lhs) + _or_chain(expr.rhs)
    return [expr]


def _plain_agg(node: Expr) -> bool:
    return (isinstance(node, Agg) and node.op in _NESTABLE and node.by is not None and node.without is None
            and node.param is None)


def _bare(node: Expr) -> Expr:
    while isinstance(node, Paren):
        node = node.expr
    return node


@dataclass(frozen=True)
class Paren(Expr):
    expr: Expr

    def render(self) -> str:
        return f"({self.expr.render()})"


def inline(expr: Expr, records: dict[str, list[tuple[dict[str, str], Expr]]], step: str = "") -> Expr:
    """Replace each selector of a recorded series by the expression(s) that record it.

    `records` maps a series name to its rules as (static labels, expression). A selector's matchers
    pick the rules whose static labels agree; the others are pushed down to the raw selectors the label
    comes from (`push`), so a query scoped to one model reads that model's series only.
    Used to run rule conditions directly on raw engine metrics, as if no recording rules were deployed.
    A rule that reads its own earlier output (a remembered mapping, `rec or last_over_time(rec[...])...`)
    has nothing to remember without rules, so the `or` alternatives that read it are dropped.
    `step`: the resolution of the subqueries that replace range selectors (the rules' evaluation interval,
    so a `deriv` or `max_over_time` sees the samples the recorded series would hold; default: the server's).
    """
    def swap(node: Expr) -> Expr | None:
        if not isinstance(node, Selector) or node.metric not in records:
            return None
        rules = records[node.metric]
        static = set().union(*(labels.keys() for labels, _ in rules))
        chosen = [(labels, e) for labels, e in rules
                  if all(_matches(m, labels[m.name]) for m in node.matchers if m.name in labels)]
        if not chosen:
            raise PromQLError(f"no recording rule of {node.metric} matches {node.render()}")
        body: Expr = Paren(any_of([_labelled(inline(_forget(e, node.metric), records, step), labels)
                                   for labels, e in chosen]))
        for m in node.matchers:
            if m.name not in static:
                body = push(body, m)
        if node.range:
            return Subquery(body, node.range, step, node.offset)
        if node.offset:
            raise PromQLError(f"cannot inline {node.render()}: an offset needs a range to move")
        return body
    return transform(expr, swap)


def _labelled(expr: Expr, labels: dict[str, str]) -> Expr:
    """A rule's expression carrying the rule's static labels, as its recorded series would."""
    for name, value in sorted(labels.items()):
        expr = set_label(expr, name, value)
    return expr


def _forget(expr: Expr, metric: str) -> Expr:
    """`expr` without the `or` alternatives that read `metric` (a rule's own output)."""
    if isinstance(expr, BinOp) and expr.op == "or":
        sides = [_forget(side, metric) for side in (expr.lhs, expr.rhs)]
        kept = [side for side in sides if all(s.metric != metric for s in selectors(side))]
        return kept[0] if len(kept) == 1 else replace(expr, lhs=sides[0], rhs=sides[1])
    return expr


_LITERAL = re.compile(r"^(?:[A-Za-z0-9_:/ -]|\\.)*$")  # letters, or an escaped character


_LABELLESS = frozenset({"vector", "time", "scalar", "absent", "absent_over_time", "label_join"})


def push(expr: Expr, m: Matcher) -> Expr:
    """`expr` restricted to the output series whose label agrees with `m`, with the matcher added to the
    selectors that label comes from. Where a label is computed (`label_replace` onto it, an aggregation
    that drops it) the result is filtered there instead (`_filter`: literal values only)."""
    if isinstance(expr, Selector):
        return expr.with_matchers(m)
    if isinstance(expr, (Num, Str)):
        return expr
    if isinstance(expr, (Paren, Subquery, At)):
        return replace(expr, expr=push(expr.expr, m))
    if isinstance(expr, Agg):
        kept = m.name in expr.by if expr.by is not None else m.name not in (expr.without or ())
        return replace(expr, expr=push(expr.expr, m)) if kept and expr.op != "count_values" else _filter(expr, m)
    if isinstance(expr, Call):
        computed = expr.func == "label_replace" and isinstance(expr.args[1], Str) and expr.args[1].value == m.name
        if computed or expr.func in _LABELLESS:
            return _filter(expr, m)
        return replace(expr, args=tuple(push(a, m) for a in expr.args))
    if isinstance(expr, BinOp):
        return _push_binop(expr, m)
    return _filter(expr, m)


def _push_binop(expr: BinOp, m: Matcher) -> Expr:
    """Output labels come from the lhs (rhs with group_right), the labels a group modifier lists from the other;
    the other side is restricted too where the label is part of the matching signature."""
    if isinstance(expr.lhs, Num) or isinstance(expr.rhs, Num):
        return replace(expr, lhs=push(expr.lhs, m), rhs=push(expr.rhs, m))
    matched = m.name in expr.on if expr.on is not None else m.name not in (expr.ignoring or ())
    if expr.op == "or":
        return replace(expr, lhs=push(expr.lhs, m), rhs=push(expr.rhs, m)) if matched else _filter(expr, m)
    lhs_owns, rhs_owns = True, matched
    if expr.group_left is not None and m.name in expr.group_left:
        lhs_owns, rhs_owns = matched, True
    if expr.group_right is not None:
        lhs_owns, rhs_owns = (True, matched) if m.name in expr.group_right else (matched, True)
    return replace(expr, lhs=push(expr.lhs, m) if lhs_owns else expr.lhs,
                   rhs=push(expr.rhs, m) if rhs_owns else expr.rhs)


def _filter(body: Expr, m: Matcher) -> Expr:
    """Apply a label matcher to an arbitrary expression (PromQL allows matchers only on selectors)."""
    values = [m.value] if m.op in ("=", "!=") else m.value.split("|")
    if m.op in ("=~", "!~") and not all(_LITERAL.match(v) for v in values):
        raise PromQLError(f"cannot inline matcher {m.render()}: only literal alternatives like \"a|b\"")
    values = [re.sub(r"\\(.)", r"\1", v) if m.op in ("=~", "!~") else v for v in values]
    probes = any_of([set_label(Call("vector", (Num(1),)), m.name, v) for v in values])
    return BinOp("unless" if m.op.startswith("!") else "and", body, probes, on=(m.name,))


def _matches(m: Matcher, value: str) -> bool:
    if m.op == "=":
        return value == m.value
    if m.op == "!=":
        return value != m.value
    hit = re.fullmatch(m.value, value) is not None
    return hit if m.op == "=~" else not hit


# ---- filters applied early ----------------------------------------------------------------------
# Prometheus evaluates a range query operator by operator, each over every series and step: an
# aggregation or a join over 8,000 GPUs costs a label set per GPU and step even when a filter above
# it keeps three. These rewrites move a filter below the operators it commutes with exactly.

_KEEPS_ABOVE = {"max": (">", ">="), "min": ("<", "<=")}  # max(x) > c  <=>  max(x where x > c) > c


def is_info(expr: Expr) -> bool:
    """True when every sample of `expr` is 1: an info series (`*:info`), a `group`, or a join, union,
    relabelling or set operation of such."""
    if isinstance(expr, Selector):
        return expr.metric.endswith(":info") and not expr.range
    if isinstance(expr, Paren):
        return is_info(expr.expr)
    if isinstance(expr, Agg):
        return expr.op == "group"
    if isinstance(expr, Call):
        return expr.func == "label_replace" and is_info(expr.args[0])
    if isinstance(expr, BinOp) and not expr.bool_:
        if expr.op in ("and", "unless"):
            return is_info(expr.lhs)
        return expr.op in ("*", "or") and is_info(expr.lhs) and is_info(expr.rhs)
    return False


def sift(expr: Expr, op: str, value: float) -> Expr:
    """`expr <op> value` (a comparison that filters), applied as deep as it stays exact: through `max`
    for > and >=, `min` for < and <=, and a multiplication by an info series (`is_info`), whose
    samples are 1. Elsewhere the comparison stays on top."""
    if isinstance(expr, Paren):
        return Paren(sift(expr.expr, op, value))
    if isinstance(expr, Agg) and op in _KEEPS_ABOVE.get(expr.op, ()) and expr.param is None:
        return replace(expr, expr=sift(expr.expr, op, value))
    if isinstance(expr, BinOp) and expr.op == "*" and not expr.bool_:
        if is_info(expr.rhs) and not isinstance(expr.lhs, Num):
            lhs = sift(expr.lhs, op, value)
            if isinstance(expr.rhs, Selector) or expr.on is None or expr.group_right is not None \
                    or lhs == BinOp(op, expr.lhs, Num(value)):
                return replace(expr, lhs=lhs)
            # An info series computed from raw series (no recording rules) is computed for the GPUs the
            # filter kept only, when that filter reached the selectors (it is read twice).
            return replace(expr, lhs=lhs, rhs=narrow(expr.rhs, lhs, expr.on))
        if is_info(expr.lhs) and not isinstance(expr.rhs, Num):
            return replace(expr, rhs=sift(expr.rhs, op, value))
        if isinstance(expr.rhs, Num) and expr.rhs.value > 0 and not isinstance(expr.lhs, Num):
            # x * k > c  <=>  x > c / k: filter x a hair looser (rounding), then exactly on top
            bound = value / expr.rhs.value
            loose = bound + (abs(bound) * 1e-9 + 1e-12) * (1 if op in ("<", "<=") else -1)
            return BinOp(op, replace(expr, lhs=sift(expr.lhs, op, loose)), Num(value))
    if isinstance(expr, BinOp) and expr.op == "or" and expr.on is None and expr.ignoring is None:
        first = _grouped(expr.lhs)
        if first is not None and _labels_of(expr.rhs) == set(first[1]):
            # (a or b) > c: a's points beyond c, and b's where a has no series at all (as `or` decides)
            rest = BinOp("unless", sift(expr.rhs, op, value), first[0], on=first[1])
            return BinOp("or", sift(expr.lhs, op, value), rest)
    return BinOp(op, expr, Num(value))


def _grouped(expr: Expr) -> tuple[Selector, tuple[str, ...]] | None:
    """(selector, labels) when `expr` aggregates one instant selector by those labels: it has an output
    series for a label set exactly when the selector has a series with those labels."""
    expr = _bare(expr)
    if isinstance(expr, Agg) and expr.by is not None and expr.param is None and isinstance(expr.expr, Selector) \
            and not expr.expr.range and expr.op in ("max", "min", "sum", "avg", "group", "count"):
        return expr.expr, expr.by
    return None


def _labels_of(expr: Expr) -> set[str] | None:
    """The label names of every output series, when the tree says (an aggregation by them), else None."""
    if isinstance(expr, Paren):
        return _labels_of(expr.expr)
    if isinstance(expr, Agg) and expr.by is not None and expr.op not in ("topk", "bottomk", "count_values"):
        return set(expr.by)
    if isinstance(expr, BinOp) and expr.op not in ("and", "or", "unless") and not expr.bool_:
        if isinstance(expr.rhs, Num):
            return _labels_of(expr.lhs)
        if isinstance(expr.lhs, Num):
            return _labels_of(expr.rhs)
    return None


def narrow(expr: Expr, other: Expr, on: tuple[str, ...]) -> Expr:
    """`expr and on(<on>) other`, applied where the `on` labels of the output come from: inside an
    aggregation that keeps them, on the side of a join that supplies them (an info series joined with
    `group_left`, typically), on the series a comparison with a number filters. Exact: each step keeps
    the same output series, and the operators above see fewer."""
    labels = set(on)
    if isinstance(expr, Paren):
        return Paren(narrow(expr.expr, other, on))
    if isinstance(expr, Agg) and expr.by is not None and labels <= set(expr.by) and expr.op != "count_values":
        return replace(expr, expr=narrow(expr.expr, other, on))
    if isinstance(expr, Call) and expr.func == "label_replace" and isinstance(expr.args[1], Str) \
            and expr.args[1].value not in labels:
        return replace(expr, args=(narrow(expr.args[0], other, on), *expr.args[1:]))
    if isinstance(expr, BinOp) and expr.ignoring is None:
        if isinstance(expr.rhs, Num) and not isinstance(expr.lhs, Num):
            return replace(expr, lhs=narrow(expr.lhs, other, on))
        if isinstance(expr.lhs, Num) and not isinstance(expr.rhs, Num):
            return replace(expr, rhs=narrow(expr.rhs, other, on))
        if expr.op in ("and", "unless"):
            return replace(expr, lhs=narrow(expr.lhs, other, on))
        if expr.op == "or" and expr.on is None:
            return replace(expr, lhs=narrow(expr.lhs, other, on), rhs=narrow(expr.rhs, other, on))
        if expr.on is None and expr.group_left is None and expr.group_right is None and expr.op != "or":
            return replace(expr, lhs=narrow(expr.lhs, other, on))  # matched on every label: the lhs's
        if expr.on is not None and expr.group_right is None and expr.op != "or":
            matched, extra = set(expr.on), set(expr.group_left or ())
            if labels <= matched | extra:  # every label from the rhs (matched ones are equal on both)
                rhs = narrow(expr.rhs, other, on)
                if isinstance(expr.rhs, Selector) and expr.group_left is not None:
                    # an info series read twice costs less than the lhs GPU fields computed for every GPU
                    return replace(expr, lhs=narrow(expr.lhs, rhs, expr.on), rhs=rhs)
                return replace(expr, rhs=rhs)
            if not labels & extra:  # every label from the lhs
                return replace(expr, lhs=narrow(expr.lhs, other, on))
    return BinOp("and", expr, other, on=on)
