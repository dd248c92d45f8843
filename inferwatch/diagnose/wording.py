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
