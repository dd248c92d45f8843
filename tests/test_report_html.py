"""The HTML report in a real headless Chromium: it loads with no network request, holds the chain and one chart
per finding with the faulty pod highlighted, links its queries to Prometheus (and Grafana), and the receiver
serves it at GET /reports/<id> with links from the markdown and chat messages.

`INFERWATCH_SCREENSHOT=docs/diagnose-report.png make test` refreshes the screenshot in docs/diagnose.md.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from inferwatch.core.config import parse_config
from inferwatch.diagnose.sinks import MarkdownDirSink, SlackSink
from inferwatch.diagnose.webhook import Receiver, engine_diagnose, make_server, parse_notification

SCENARIO = "vllm-kv-cache-pressure"
AT = "2026-01-01T01:50:00Z"
DIAGNOSE = [sys.executable, "-c", "import sys; from inferwatch.cli import diagnose_main; sys.exit(diagnose_main())"]


def chromium() -> str:
    for name in ("chromium", "chromium-headless-shell", "chromium-browser"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.fail("no chromium on PATH: run `make setup` (installs the Debian package chromium)")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        yield b
        b.close()


def open_page(browser, path: Path):
    """The page and every request it made; anything but the file itself is refused (and recorded)."""
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url))
    page.route("**/*", lambda route: route.continue_() if route.request.url == path.as_uri() else route.abort())
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    return page, seen


def diagnose(url: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*DIAGNOSE, "--prometheus", url, "--at", AT, *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


@pytest.fixture(scope="module")
def report(scenario_prometheus, tmp_path_factory):
    """`diagnose --format html` (with a Grafana base URL configured) and the same diagnosis as JSON."""
    tmp = tmp_path_factory.mktemp("html")
    prom = scenario_prometheus(SCENARIO)
    (tmp / "inferwatch.yaml").write_text("diagnose: {grafana_url: 'https://grafana.example', "
                                         "grafana_datasource: prom-uid}\n")
    html = diagnose(prom.url, "--format", "html", "--config", "inferwatch.yaml", cwd=tmp)
    assert html.returncode == 1, html.stderr  # degraded
    (tmp / "report.html").write_text(html.stdout)
    data = json.loads(diagnose(prom.url, "--format", "json", cwd=tmp).stdout)
    return tmp / "report.html", data, prom


def test_the_page_loads_offline_with_the_chain_and_a_chart_per_finding(browser, report):
    path, data, _ = report
    page, seen = open_page(browser, path)
    try:
        assert seen == [path.as_uri()]  # no script, font, image or stylesheet fetched
        assert page.locator("header.verdict").inner_text().startswith("DEGRADED")
        chain = page.locator("#chain li")
        assert chain.count() == len(data["root_causes"]) >= 1
        first = data["root_causes"][0]
        assert chain.nth(0).locator(".step").all_inner_texts() == first["path"]
        assert chain.nth(0).locator(".step.root").inner_text() == first["cause"] == "kv_cache_pressure"
        findings = [s["symptom"] for s in data["symptoms"]] + [r["cause"] for r in data["root_causes"]]
        charts = page.locator("figure.chart")
        assert [charts.nth(i).get_attribute("data-node") for i in range(charts.count())] == findings
        for i in range(charts.count()):
            chart = charts.nth(i)
            assert chart.locator("polyline.faulty").count() >= 1
            assert chart.locator("line.onset").count() == 1 and chart.locator("line.reference").count() == 1
            assert chart.locator("rect.baseline-period").count() == 1
        # The root cause's chart: chat-1 highlighted, its sibling chat-0 in grey.
        cause = page.locator('figure.chart[data-node="kv_cache_pressure"]')
        assert cause.locator("polyline.faulty title").all_text_contents() == ["chat-1"]
        assert "chat-0" in cause.locator("polyline.sibling title").all_text_contents()
        assert page.locator("table.evidence").count() == len(findings)
        # The charts cost one query more than the diagnosis itself.
        assert f"{data['stats']['queries'] + 1} queries in" in page.locator("footer").inner_text()
        shot = page.screenshot(full_page=True)
        assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 20_000
        if os.environ.get("INFERWATCH_SCREENSHOT"):
            Path(os.environ["INFERWATCH_SCREENSHOT"]).write_bytes(shot)
    finally:
        page.close()


def test_every_query_links_to_prometheus_and_grafana_and_the_links_run(browser, report):
    path, data, prom = report
    page, _ = open_page(browser, path)
    try:
        hrefs = page.locator("a").evaluate_all("links => links.map(a => a.href)")
    finally:
        page.close()
    graph = [h for h in hrefs if h.startswith(prom.url + "/graph?")]
    explore = [h for h in hrefs if h.startswith("https://grafana.example/explore?")]
    charts = len(data["symptoms"]) + len(data["root_causes"])
    assert len(graph) == len(explore) == charts + len(data["nodes"])  # each chart's signal, each node's query
    pane = json.loads(parse_qs(urlsplit(explore[0]).query)["panes"][0])["iw"]
    assert pane["datasource"] == "prom-uid" and pane["queries"][0]["expr"]
    # The chart of the root cause links the expression it drew; Prometheus runs it at the incident.
    expr = parse_qs(urlsplit(graph[charts - 1]).query)["g0.expr"][0]
    assert prom.query(expr, 1767232200.0)  # 2026-01-01T01:50:00Z


def test_values_from_the_command_line_are_escaped_not_loaded(browser, report, tmp_path):
    _, _, prom = report
    hostile = '<img src="http://127.0.0.1:9/x.png"><script>document.title="owned"</script>'
    res = diagnose(prom.url, "--format", "html", "--model", hostile, cwd=tmp_path)
    assert res.returncode == 4, res.stderr  # no such model: no data
    path = tmp_path / "r.html"
    path.write_text(res.stdout)
    page, seen = open_page(browser, path)
    try:
        assert seen == [path.as_uri()] and page.title() != "owned"
        assert hostile in page.locator("header.verdict").inner_text()
    finally:
        page.close()


def test_the_receiver_serves_the_page_and_its_messages_link_it(scenario_prometheus, browser, tmp_path):
    from test_webhook import chat_webhook, payload
    cfg = parse_config("")
    engine = engine_diagnose(scenario_prometheus(SCENARIO).url, "15m", cfg, charts=True)
    with chat_webhook() as (chat_url, posts):
        receiver = Receiver(cfg, engine, [MarkdownDirSink(tmp_path), SlackSink(chat_url)])
        server = make_server(receiver, "127.0.0.1", 0, 1 << 20)
        base = f"http://127.0.0.1:{server.server_address[1]}"
        receiver.public_url = base
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            receiver.start()
            assert receiver.submit(parse_notification(json.dumps(payload()).encode()))[0] == 202
            assert receiver.stop(60) == 0
            [md] = tmp_path.glob("*.md")
            link = f"{base}/reports/{md.stem}"
            assert f"- report with charts: {link}" in md.read_text()
            assert link in posts[0]["text"]
            served = requests.get(link, timeout=5)
            assert served.status_code == 200 and served.headers["Content-Type"].startswith("text/html")
            assert served.text.rstrip() == (tmp_path / f"{md.stem}.html").read_text().rstrip()
            for bad in ("../../etc/passwd", "%2e%2e%2fetc%2fpasswd", md.stem + ".md", "nope"):
                assert requests.get(f"{base}/reports/{bad}", timeout=5).status_code == 404
        finally:
            server.shutdown()
            server.server_close()
    page, seen = open_page(browser, tmp_path / f"{md.stem}.html")
    try:
        assert seen == [(tmp_path / f"{md.stem}.html").as_uri()]
        assert "LLMPodKVCacheSaturated" in page.locator("header.verdict").inner_text()
        assert page.locator('figure.chart[data-node="kv_cache_pressure"] polyline.faulty').count() == 1
    finally:
        page.close()


def test_a_faulty_gpu_is_drawn_over_the_gpus_of_its_workload(scenario_prometheus):
    from inferwatch.core.config import Config
    from inferwatch.diagnose.engine import Scope, run
    report = run(scenario_prometheus("diag-two-faults").url, Scope(), 1767232200.0, "15m", Config(), charts=True)
    charts = {c.node: c for c in report.charts}
    assert set(charts) == {s for s, _ in report.symptoms} | {r.cause for r in report.root_causes}
    gpu = charts["gpu_hardware_fault"]
    faulty = [(line.entity["pod"], line.entity["gpu"]) for line in gpu.lines if line.faulty]
    siblings = [line.entity["pod"] for line in gpu.lines if not line.faulty]
    assert faulty == [("chat-2", "0")] and sorted(siblings) == ["chat-0", "chat-1"]
    assert max(v for _, v in gpu.lines[0].points) == 48 and gpu.reference == 0  # XID 48 over threshold 0
    assert gpu.start < gpu.onset < gpu.at and gpu.start < gpu.window_start < gpu.at
    text = report.render("html")
    assert text.count('<figure class="chart"') == len(charts) and "chat-2 gpu0" in text
