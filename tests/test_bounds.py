"""Bounds of PromQL expressions over a frame (core/bounds.py): pure rewrites of the tree."""
from __future__ import annotations

import promql_parser
import pytest

from inferwatch.core.bounds import Frame, bound, pinned
from inferwatch.core.promql import Agg, At, BinOp, Call, Num, Selector, agg, histogram_quantile, positive, rate

FRAME = Frame(span=1800, at=1_767_230_700)
USED, FREE = Selector("DCGM_FI_DEV_FB_USED"), Selector("DCGM_FI_DEV_FB_FREE")


def text(expr) -> str:
    out = expr.render()
    promql_parser.parse(out)  # every bound is a query Prometheus accepts
    return out


def test_a_gauge_is_bounded_by_its_extremes_over_the_frame_and_the_lookback():
    assert text(bound(USED, True, FRAME)) == "max_over_time(DCGM_FI_DEV_FB_USED[2100s] @ 1767230700.000)"
    assert text(bound(USED, False, FRAME)).startswith("min_over_time(DCGM_FI_DEV_FB_USED[2100s] @")


def test_a_counter_rate_is_bounded_by_the_increase_over_every_window_the_frame_reads():
    r = rate(Selector("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL"), "5m")
    assert text(bound(r, True, FRAME)) == \
        "increase(DCGM_FI_DEV_ECC_DBE_VOL_TOTAL[2100s] @ 1767230700.000) * 0.004166666666666667"
    assert text(bound(r, False, FRAME)).endswith("* 0")  # a counter's rate is never below zero


def test_an_operand_subtracted_or_divided_by_takes_the_opposite_bound():
    assert "min_over_time(DCGM_FI_DEV_FB_FREE" in text(bound(USED - FREE, True, FRAME))
    assert "min_over_time(DCGM_FI_DEV_FB_FREE" in text(bound(USED / FREE, True, FRAME))
    assert text(bound(Num(1) - FREE, True, FRAME)).startswith("1 - min_over_time(DCGM_FI_DEV_FB_FREE")
    assert text(bound(Num(2) / FREE, False, FRAME)).startswith("2 / max_over_time(DCGM_FI_DEV_FB_FREE")


def test_a_share_of_a_total_reads_its_part_once():
    keyed = lambda s: agg("max", s, ("UUID",))  # noqa: E731
    ratio = keyed(USED) / positive(keyed(USED) + keyed(FREE))
    out = text(bound(ratio, True, FRAME))
    assert out.count("DCGM_FI_DEV_FB_USED") == 1 and "min_over_time(DCGM_FI_DEV_FB_FREE" in out
    assert out.startswith("1 / (1 +")


def test_aggregations_keep_their_groups_and_take_the_widest_member():
    q = Agg("quantile", USED, by=("workload_name",), param=Num(0.5))
    assert text(bound(q, True, FRAME)).startswith("max by (workload_name) (max_over_time(")
    assert text(bound(q, False, FRAME)).startswith("min by (workload_name) (min_over_time(")
    assert bound(agg("sum", USED, ("pod",)), False, FRAME) is None  # a sum's members may come and go


def test_a_filter_keeps_only_what_can_pass_and_the_other_bound_is_clamped():
    assert text(bound(USED > 5, True, FRAME)).endswith("> 5")
    assert text(bound(USED > 5, False, FRAME)).startswith("clamp_min(min_over_time(")


def test_an_info_join_is_left_out_unless_it_brings_a_wanted_label():
    info = Selector("llm_gpu:info", ())
    joined = BinOp("*", agg("max", USED, ("UUID",)), info, on=("UUID",), group_left=("pod", "workload_name"))
    assert "llm_gpu:info" not in text(bound(joined, True, FRAME))
    kept = text(bound(joined, True, FRAME, keep=("workload_name",)))
    assert "group_left (workload_name) group by (UUID, workload_name) (max_over_time(llm_gpu:info" in kept


def test_pinned_expressions_are_their_own_bounds_and_the_rest_has_none():
    baseline = Call("quantile_over_time", (Num(0.5), At(USED, "3600s", "", 1_767_229_800)))
    assert pinned(baseline) and bound(baseline, True, FRAME) is baseline
    buckets = rate(Selector("vllm:e2e_request_latency_seconds_bucket"), "5m")
    assert bound(histogram_quantile(0.9, buckets), True, FRAME) is None
    assert bound(BinOp(">", USED, FREE, bool_=True), True, FRAME) is None
    assert bound(Selector("x", range="5m"), True, FRAME) is None


@pytest.mark.parametrize("hi", [True, False])
def test_an_or_takes_each_side_bound(hi):
    gr, util = Selector("DCGM_FI_PROF_GR_ENGINE_ACTIVE"), Selector("DCGM_FI_DEV_GPU_UTIL")
    out = text(bound(BinOp("or", gr, BinOp("unless", util * 0.01, gr, on=("UUID",))), hi, FRAME))
    assert "unless" not in out and out.count("_over_time(") == 2  # dropping `unless` keeps more series
