"""Exogenous cause alerts under `promtool test rules` (alerts-exogenous, replayed on vLLM and SGLang).

A traffic surge beyond a model's recent capacity (with a queue) and a prompt- or generation-length shift
fire on exactly the model concerned; 40% more traffic, 40% longer prompts and an absorbed tenfold spike
do not.
"""
from __future__ import annotations

import pytest

from test_alerts import DEFAULT, Fires, Quiet, alert_rules, alert_tests, load_as, promtool, write_rules
from inferwatch.sandbox import scenario

NAME = "alerts-exogenous"
PROMPT, GENERATION = "llm_model:prompt_tokens", "llm_model:generation_tokens"
CASES: dict[str, list[Fires | Quiet]] = {
    NAME: [
        Quiet("*", ("44m",)),
        # 12 requests/s (two pods); 5m rates reach 1.5x within ~2 minutes, then `for: 2m`; exactly surge, never busier or spike.
        Quiet("LLMModelTrafficSurge", ("46m",)),
        *[Fires("LLMModelTrafficSurge", at, ("surge",), 12) for at in ("51m", "58m")],
        Quiet("LLMModelRequestLengthShift", ("46m",)),
        # Two rules (prompt, generation): exactly prompts and answers, never drift.
        Fires("LLMModelRequestLengthShift", "55m", ("prompts",), 3000, labels={"length": "prompt"}),
        Fires("LLMModelRequestLengthShift", "55m", ("answers",), 800, labels={"length": "generation"}),
        Quiet("LLMModelErrorBudgetBurn", ("55m",)),
    ],
}


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_exogenous_causes_fire_on_their_model_only(tmp_path, engine):
    sc = load_as(NAME, engine)
    series = scenario.synthesize(sc)
    tests = alert_tests(CASES[NAME], sc, series, alert_rules(DEFAULT))
    res = promtool(tmp_path, write_rules(DEFAULT, tmp_path), DEFAULT, sc, series, tests)
    assert res.returncode == 0, f"{engine}:\n{res.stdout[-5000:]}{res.stderr[-2000:]}"
