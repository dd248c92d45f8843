"""Exogenous cause alerts under `promtool test rules` (alerts-exogenous, replayed on vLLM and SGLang).

A traffic surge beyond a model's recent capacity (with a queue) and a prompt- or generation-length shift
fire on exactly the model concerned; 40% more traffic, 40% longer prompts and an absorbed tenfold spike
do not, and requests that grow within the pods' room page nothing.
"""
from __future__ import annotations

import pytest

from test_alerts import DEFAULT, Fires, Quiet, alert_rules, alert_tests, load_as, measured, promtool, write_rules
from inferwatch.sandbox import scenario

NAME = "alerts-exogenous"
PROMPT, GENERATION = "llm_model:prompt_tokens", "llm_model:generation_tokens"
CASES: dict[str, list[Fires | Quiet]] = {
    NAME: [
        Quiet("*", ("44m",)),
        # The pods finish about twice the baseline (what the surge's value, requests/s, shows); 5m rates
        # pass 1.5x within ~2 minutes, then `for: 1m`; exactly surge, never busier or spike.
        Quiet("LLMModelTrafficSurge", ("46m",)),
        *[Fires("LLMModelTrafficSurge", at, ("surge",), None) for at in ("51m", "58m")],
        Quiet("LLMModelRequestLengthShift", ("46m",)),
        # Two rules (prompt, generation): exactly prompts and answers, never drift. Values: the tokens per
        # request the simulated clients sent (log-normal, generations capped at max_tokens).
        Fires("LLMModelRequestLengthShift", "55m", ("prompts",), None, labels={"length": "prompt"}),
        Fires("LLMModelRequestLengthShift", "55m", ("answers",), None, labels={"length": "generation"}),
    ],
}
CALM = ("prompts", "answers", "drift", "spike")  # longer requests and an absorbed spike breach no SLO


def checks() -> list[dict]:
    """No page on the models whose traffic stays within capacity, over the whole run. (surge and busier
    queue beyond their capacity: their TTFT objective burns, as it should.)"""
    calm = "|".join(CALM)
    pages = f'ALERTS{{alertstate="firing", severity="critical", model_name=~"{calm}"}}'
    return [{"expr": f"count(max_over_time({pages}[1h15m]))", "eval_time": "1h14m", "exp_samples": []}]


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_exogenous_causes_fire_on_their_model_only(tmp_path, engine):
    sc = load_as(NAME, engine)
    series = scenario.synthesize(sc)
    tests = alert_tests(measured(CASES[NAME], sc, series, DEFAULT), sc, series, alert_rules(DEFAULT))
    res = promtool(tmp_path, write_rules(DEFAULT, tmp_path), DEFAULT, sc, series, tests, checks())
    assert res.returncode == 0, f"{engine}:\n{res.stdout[-5000:]}{res.stderr[-2000:]}"
