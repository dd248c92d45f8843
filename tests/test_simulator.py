"""The serving simulator's mechanisms (inferwatch/sandbox/sim/): one exogenous change moves many
signals through the same coupling a continuous-batching engine has, and nothing else moves them."""
from __future__ import annotations

import random
from statistics import fmean

import pytest

from inferwatch.sandbox import exposition, scenario
from inferwatch.sandbox.sim.cluster import ModelSim, PodSpec, simulate
from inferwatch.sandbox.sim.engine import Conditions, Engine, Observed, Serving
from inferwatch.sandbox.sim.faults import Fault
from inferwatch.sandbox.sim.workload import Workload, poisson, sample


def run_engine(minutes: float = 20, serving: Serving = Serving(), rate: float = 3.0, gen_x: float = 1.0,
               prompt_x: float = 1.0, cond: Conditions | None = None, seed: int = 3) -> tuple[Observed, list, Engine]:
    """One engine fed by Poisson arrivals; returns what it observed after a 5-minute warm-up and the
    (running, waiting, kv) gauges of each step."""
    rng = random.Random(seed)
    e, w, h = Engine(serving, rng), Workload(), 5.0
    obs, gauges = Observed(), []
    for k in range(int((minutes + 5) * 60 / h)):
        o = obs if k * h >= 300 else Observed()
        e.step(k * h, h, sample(rng, w, k * h, h, poisson(rng, rate * h), prompt_x, gen_x, 1.0), cond or Conditions(), o)
        if k * h >= 300:
            gauges.append((len(e.running), len(e.queue), e.kv_used / e.kv_cap))
    return obs, gauges, e


def mean(values: list[tuple[float, float]]) -> float:
    return sum(v * w for v, w in values) / sum(w for _, w in values)


def test_longer_generations_grow_the_batch_fill_kv_and_preempt():
    base, g0, _ = run_engine()
    longer, g1, _ = run_engine(gen_x=2.5)
    assert fmean(r for r, _, _ in g1) > 2 * fmean(r for r, _, _ in g0)  # more requests stay in the batch
    assert max(kv for _, _, kv in g1) > 0.95 > max(kv for _, _, kv in g0)
    assert base.preemptions == 0 and longer.preemptions > 0
    assert mean(longer.queue) > 3 * mean(base.queue)  # and requests wait to be admitted
    assert mean(longer.ttft) > 1.3 * mean(base.ttft)
    assert longer.finished["length"] / sum(longer.finished.values()) > \
        base.finished["length"] / sum(base.finished.values())  # more hit max_tokens


def test_preemption_only_when_kv_is_exhausted():
    roomy, gauges, _ = run_engine(serving=Serving(kv_tokens=400_000), gen_x=2.5)
    assert roomy.preemptions == 0 and max(kv for _, _, kv in gauges) < 0.5


def test_a_slower_clock_lengthens_every_iteration():
    fast, _, _ = run_engine()
    slow, _, _ = run_engine(cond=Conditions(clock=0.6))
    assert 1.25 < mean(slow.itl) / mean(fast.itl) < 1 / 0.6  # GPU time / 0.6; host time unchanged
    assert mean(slow.e2e) > mean(fast.e2e)


def test_host_overhead_idles_the_gpu_and_slows_tokens():
    normal, _, _ = run_engine()
    bound, _, _ = run_engine(cond=Conditions(host_s=0.05))
    assert bound.busy / bound.seconds < 0.35 < normal.busy / normal.seconds
    assert mean(bound.itl) > 3 * mean(normal.itl)


def test_max_seqs_caps_the_batch_and_queues_the_rest():
    capped, gauges, _ = run_engine(serving=Serving(max_seqs=4))
    assert max(r for r, _, _ in gauges) <= 4 and fmean(w for _, w, _ in gauges) > 1
    assert capped.preemptions == 0


def test_littles_law_holds_for_the_batch():
    obs, gauges, _ = run_engine(minutes=30)
    throughput = sum(obs.finished.values()) / obs.seconds
    in_batch = mean(obs.e2e) - mean(obs.queue)
    assert fmean(r for r, _, _ in gauges) == pytest.approx(throughput * in_batch, rel=0.2)


def test_longer_prompts_raise_ttft_through_prefill():
    base, _, _ = run_engine()
    longer, _, _ = run_engine(prompt_x=4.0)
    assert mean(longer.ttft) > 1.5 * mean(base.ttft)
    assert longer.compute / longer.seconds > base.compute / base.seconds


def _model(faults=(), pods=("p-0", "p-1"), rate=6.0, gpus=1) -> ModelSim:
    return ModelSim("m", [PodSpec(p, gpus=gpus) for p in pods], Workload(rate=rate), Serving(), list(faults))


def test_thermal_fault_heats_the_gpu_and_the_clock_backs_off_and_itl_follows():
    runs = simulate([_model([Fault("thermal", at=1800, pods=("p-1",), params={"celsius": 45})])], 0, 3600, 60, seed=1)
    hot, cool = runs[(0, "p-1")], runs[(0, "p-0")]
    assert hot[-1].gpus[0].temperature > 85 and hot[-1].gpus[0].sm_mhz < 0.85 * cool[-1].gpus[0].sm_mhz
    assert hot[20].gpus[0].sm_mhz == cool[20].gpus[0].sm_mhz  # nothing before the onset
    # temperature lags: one step after the onset it has not reached its new level
    assert hot[31].gpus[0].temperature < hot[-1].gpus[0].temperature - 3
    assert mean(hot[-1].parts[0].obs.itl) > 1.1 * mean(cool[-1].parts[0].obs.itl)



def test_custom_dcgm_counters_count_thermal_time_clock_events_and_xids_in_their_window():
    sc = scenario.from_dict({"name": "csv", "duration": "30m", "step": "60s", "pods": ["p-0"], "dcgm_counters": "custom",
                             "workload": {"rate": 3}, "faults": [
                                 {"kind": "thermal", "at": "10m", "pods": ["p-0"], "celsius": 45},
                                 {"kind": "xid", "at": "12m", "pods": ["p-0"], "gpus": [0], "code": 13, "errors": 0}]})
    got = {(labels["__name__"], labels.get("clock_event", labels.get("xid", ""))): [v for _, v in samples]
           for labels, samples in scenario.synthesize(sc) if labels.get("gpu") == "0"}
    thermal, events = got[("DCGM_FI_DEV_THERMAL_VIOLATION", "")], got[("DCGM_EXP_CLOCK_EVENTS_COUNT", "sw_thermal")]
    assert thermal[10] == events[10] == 0 and thermal[-1] > 5 * 60e9 and events[-1] > 5
    assert thermal == sorted(thermal) and got[("DCGM_FI_DEV_POWER_VIOLATION", "")][-1] == 0
    xids = got[("DCGM_EXP_XID_ERRORS_COUNT", "13")]  # from the XID on: 1 within the 5-minute window, then 0
    assert xids[:3] == [1.0, 1.0, 1.0] and xids[-1] == 0.0

def test_idle_gpus_clock_down_and_power_drops():
    runs = simulate([_model(rate=0.0)], 0, 600, 60)
    g = runs[(0, "p-0")][-1].gpus[0]
    assert g.engine_active == 0 and g.sm_mhz < 500 and g.power < 100


def test_routing_skew_moves_traffic_without_changing_the_total():
    runs = simulate([_model([Fault("routing_skew", at=0, pods=("p-0",), factor=3.0)])], 0, 1800, 60, seed=2)
    done = {p: sum(sum(s.parts[0].obs.finished.values()) for s in runs[(0, p)][5:]) for p in ("p-0", "p-1")}
    assert 2.4 < done["p-0"] / done["p-1"] < 3.6
    assert sum(done.values()) / (25 * 60) == pytest.approx(6.0, rel=0.15)


def test_pod_loss_moves_traffic_and_leaves_gpus_without_pod():
    runs = simulate([_model([Fault("pod_loss", at=600, pods=("p-1",))])], 0, 1800, 60, seed=2)
    gone = runs[(0, "p-1")][-1]
    assert gone.up is None and gone.parts == [] and not gone.gpus[0].attached
    survivor = runs[(0, "p-0")]
    before = sum(sum(s.parts[0].obs.finished.values()) for s in survivor[2:10])
    after = sum(sum(s.parts[0].obs.finished.values()) for s in survivor[20:28])
    assert after > 1.6 * before


def test_a_scale_down_lowers_the_desired_replicas_and_removes_the_pods_named():
    m = _model([Fault("scale", at=600, pods=("p-1",), params={"replicas": 1})])
    m.replicas = 2
    assert [m.desired_replicas(t) for t in (0, 599, 600, 1800)] == [2, 2, 1, 1]
    runs = simulate([m], 0, 1800, 60, seed=2)
    assert runs[(0, "p-1")][5].up == 1 and runs[(0, "p-1")][-1].up is None


def test_xid_with_crash_takes_the_target_down_and_restarts_reset_counters():
    runs = simulate([_model([Fault("xid", at=600, pods=("p-1",), params={"code": 79, "crash": 1})])], 0, 1800, 60)
    samples = runs[(0, "p-1")]
    assert samples[15].gpus[0].xid == 79 and any(s.up == 0 for s in samples[10:])
    assert samples[-1].restarts >= 1


SC = """
name: sim-restart
engine: {engine}
version: "{version}"
duration: 40m
step: 60s
model: m
labels: {{namespace: llm, workload_name: w}}
pods: [{{name: a-0, gpus: 2}}]
workload: {{rate: 3}}
faults: [{{kind: restart, at: 20m, pods: [a-0], down: 90}}]
"""


@pytest.mark.parametrize("engine,version", [("vllm", "0.33"), ("vllm", "0.8"), ("sglang", "0.4.5"),
                                            ("sglang", "0.5.23")])
def test_counters_are_monotonic_except_across_a_restart(engine, version):
    import yaml
    sc = scenario.from_dict(yaml.safe_load(SC.format(engine=engine, version=version)))
    series = scenario.synthesize(sc)
    restart = sc.start + 20 * 60
    counters = [(l, s) for l, s in series if l["__name__"].endswith(("_total", "_count", "_sum", "_bucket"))
                and l.get("job") != "kube-state-metrics"]
    assert counters
    for labels, samples in counters:
        for (t0, v0), (t1, v1) in zip(samples, samples[1:]):
            assert v1 >= v0 - 1e-9 or t1 > restart, (labels, t1, v0, v1)
    down = [v for l, s in series if l["__name__"] == "up" for t, v in s if restart < t < restart + 90]
    assert down == [0.0]
    buckets = {l["le"] for l, _ in series if l["__name__"].endswith("time_to_first_token_seconds_bucket")}
    assert buckets == {exposition.le_text(b) for b in exposition.BUCKETS[engine]["ttft"]} | {"+Inf"}
    gpus = {l["gpu"] for l, _ in series if l["__name__"] == "DCGM_FI_DEV_SM_CLOCK"}
    assert gpus == {"0", "1"}


def test_the_same_seed_gives_the_same_series():
    a = simulate([_model()], 0, 900, 60, seed=5)
    b = simulate([_model()], 0, 900, 60, seed=5)
    c = simulate([_model()], 0, 900, 60, seed=6)
    key = (0, "p-0")
    assert [s.parts[0].obs.finished for s in a[key]] == [s.parts[0].obs.finished for s in b[key]]
    assert [s.parts[0].obs.finished for s in a[key]] != [s.parts[0].obs.finished for s in c[key]]


# ---- serving features: LoRA slots, speculative decoding, prefill/decode hand-off -----------------------

def _feature_model(faults=(), pods=None, **kw) -> ModelSim:
    from inferwatch.sandbox.sim.pd import Link
    return ModelSim("m", pods or [PodSpec("p-0")], Workload(**kw.pop("workload", {})), Serving(**kw.pop("serving", {})),
                    list(faults), transfer=Link(**kw.pop("transfer", {})))


def _period(samples, start: int, end: int) -> dict:
    """Totals of the samples [start, end): observed TTFT / ITL means, finished requests, surfaces."""
    obs = [p.obs for s in samples[start:end] for p in s.parts]
    surf: dict[str, float] = {}
    for o in obs:
        for k, v in o.surfaces.items():
            surf[k] = surf.get(k, 0.0) + v
    avg = lambda name: mean(v) if (v := [x for o in obs for x in getattr(o, name)]) else 0.0  # noqa: E731
    return {"ttft": avg("ttft"), "itl": avg("itl"), "itl_steps": avg("itl_steps"),
            "done": sum(sum(o.finished.values()) for o in obs), "waiting": fmean(p.waiting for s in samples[start:end]
                                                                                 for p in s.parts), **surf}


def test_requests_wait_for_a_lora_slot_while_the_batch_has_room():
    wide = Fault("lora_adapters", at=900, factor=4.0)
    runs = simulate([_feature_model([wide], workload={"adapters": 3, "adapter_skew": 0.5, "rate": 6},
                                    serving={"max_loras": 4, "kv_tokens": 200000})], 0, 1800, 60, seed=3)
    samples = runs[(0, "p-0")]
    before, after = _period(samples, 5, 15), _period(samples, 18, 30)
    assert before["waiting"] < 0.5 and after["waiting"] > 5      # queued with max_seqs 256 and KV mostly free
    assert all(len(p.adapters[0]) <= 4 for s in samples for p in s.parts)  # never more adapters than slots
    assert all(p.kv_usage < 0.5 and p.running < 256 for s in samples[18:] for p in s.parts)
    late = samples[-1].parts[0]
    assert len(late.adapters[0]) == 4 and set(late.adapters[1]) - set(late.adapters[0])  # others wait
    assert after["ttft"] > 10 * before["ttft"] and late.obs.surfaces["lora_max"] == 4


def test_fewer_lora_slots_than_adapters_in_use_starve_the_rest():
    fewer = Fault("max_loras", at=900, factor=0.25)
    runs = simulate([_feature_model([fewer], workload={"adapters": 3, "rate": 6},
                                    serving={"max_loras": 4, "kv_tokens": 200000})], 0, 1800, 60, seed=4)
    samples = runs[(0, "p-0")]
    assert _period(samples, 18, 30)["waiting"] > 3 * max(0.5, _period(samples, 5, 15)["waiting"])
    assert samples[-1].parts[0].obs.surfaces["lora_max"] == 1


def test_lower_draft_acceptance_yields_fewer_tokens_per_step():
    from inferwatch.sandbox.sim.spec_decode import tokens_per_step
    assert tokens_per_step(0.5, 3) == pytest.approx(1.875) and tokens_per_step(0.9, 0) == 1.0
    drop = Fault("draft_acceptance", at=900, factor=0.2)
    runs = simulate([_feature_model([drop], workload={"rate": 3, "acceptance": 0.7},
                                    serving={"params_b": 32, "spec_tokens": 3, "kv_tokens": 200000})],
                    0, 1800, 60, seed=3)
    before, after = _period(runs[(0, "p-0")], 5, 15), _period(runs[(0, "p-0")], 18, 30)
    for p, a in ((before, 0.7), (after, 0.14)):  # vLLM's acceptance rate: accepted / draft tokens
        assert p["spec_accepted"] / p["spec_draft_tokens"] == pytest.approx((a + a ** 2 + a ** 3) / 3, rel=0.01)
        assert p["spec_draft_tokens"] == pytest.approx(3 * p["spec_drafts"])
    assert after["itl"] > 1.8 * before["itl"]               # per token (SGLang's ITL)
    # per engine step (vLLM's ITL) only as much as the grown batch slows each step
    assert after["itl_steps"] / before["itl_steps"] < 0.7 * after["itl"] / before["itl"]


PD_PODS = [PodSpec("pre-0", role="prefill"), PodSpec("pre-1", role="prefill"), PodSpec("dec-0", role="decode"),
           PodSpec("dec-1", role="decode")]


def test_kv_hand_off_adds_the_transfer_time_to_the_decode_pods_ttft():
    slow = [Fault("link_bandwidth", at=900, factor=1 / 60), Fault("transfer_failures", at=900, params={"share": 0.1})]
    runs = simulate([_feature_model(slow, pods=PD_PODS, workload={"rate": 4}, serving={"params_b": 32,
                                    "kv_tokens": 200000}, transfer={"gbs": 25})], 0, 1800, 60, seed=3)
    pre = [_period(runs[(0, "pre-0")], a, b) for a, b in ((5, 15), (18, 30))]
    dec = [_period(runs[(0, "dec-0")], a, b) for a, b in ((5, 15), (18, 30))]
    assert "kv_transfers" not in pre[0] and pre[1]["ttft"] == pytest.approx(pre[0]["ttft"], rel=0.1)
    gen = sum(p.obs.generation_tokens for s in runs[(0, "pre-0")][5:15] for p in s.parts)
    assert gen == pytest.approx(pre[0]["done"])                 # prefill pods produce one token each
    xfer = [d["kv_transfer_seconds"] / d["kv_transfers"] for d in dec]
    assert xfer[0] < 0.05 and xfer[1] > 0.3
    assert dec[1]["ttft"] - dec[0]["ttft"] == pytest.approx(xfer[1] - xfer[0], rel=0.35)
    assert dec[0]["kv_transfer_failed"] == 0 and 0.05 < dec[1]["kv_transfer_failed"] / dec[1]["kv_transfers"] < 0.16
    assert dec[0]["done"] > 0.4 * 4 * 600 / 2                    # every request is decoded on a decode pod


def test_only_the_normalization_scenarios_paint():
    """Every shipped scenario but norm-* (recording arithmetic on exact values) is made by the simulator."""
    painted = [name for name in scenario.available() if not name.startswith("norm-")
               for sc in [scenario.load(name)] if sc.extra_series or any(m.sim is None for m in sc.models)]
    assert painted == []
