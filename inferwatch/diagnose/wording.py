"""How entities and values read in every report format (text, markdown, HTML)."""
from __future__ import annotations


def who(e: dict[str, str]) -> str:
    if e.get("gpu"):
        return f"{e.get('pod', '?')}/gpu{e['gpu']}" + (f"@{e['hostname']}" if e.get("hostname") else "")
    if e.get("pod"):
        return f"{e['pod']} ({e.get('model_name', '')})" if e.get("model_name") else e["pod"]
    return e.get("model_name", "") or "(scope)"


def fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "?"
    if unit == "ratio":
        return f"{v:.0%}" if v <= 1.5 else f"{v:.2f}"
    text = f"{v:.3g}"
    return f"{text} {unit}" if unit else text


def accounts(acc: dict) -> list[str]:
    """A root cause's accounting (diagnose/accounting.py) as sentences: Little's law, the TTFT split."""
    out = []
    if law := acc.get("littles_law"):
        now, base = law["now"], law["baseline"]
        line = (f"{law['counts']} {_n(now['observed'])} ≈ {_n(now['completion_rate'])} requests/s x "
                f"{_n(now['seconds'])} s = {_n(now['predicted'])} (Little's law; baseline {_n(base['observed'])} ≈ "
                f"{_n(base['completion_rate'])}/s x {_n(base['seconds'])} s)")
        why = [f"{label} {_ratio(now[k], base[k])}" for k, label in (("seconds", "time in batch"),
                                                                     ("completion_rate", "completions"))
               if _ratio(now[k], base[k])]
        arrivals = acc.get("arrival_rate", {})
        if _ratio(arrivals.get("now"), arrivals.get("baseline")):
            why.append(f"arrivals {_ratio(arrivals['now'], arrivals['baseline'])} ({_n(arrivals['now'])}/s)")
        out.append(line + (": " + ", ".join(why) if why else ""))
    if split := acc.get("ttft"):
        now, base = split["now"], split["baseline"]
        out.append(f"mean TTFT {_n(now['ttft'])} s ≈ queue wait {_n(now['queue_wait'])} s + prefill "
                   f"{_n(now['prefill'])} s (baseline {_n(base['ttft'])} ≈ {_n(base['queue_wait'])} + "
                   f"{_n(base['prefill'])} s)")
    return out


def _n(v: float | None) -> str:
    return "?" if v is None else f"{v:.3g}"


def _ratio(now: float | None, base: float | None) -> str:
    """'2.8x' when the value moved by more than a tenth, else ''."""
    if now is None or base is None or base <= 0 or abs(now / base - 1) < 0.1:
        return ""
    return f"{now / base:.2g}x"
