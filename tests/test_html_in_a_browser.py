"""``report.html`` as people see it: rendered by headless Chromium (Playwright), at 1400 px.

The test needs a Chromium binary (``apt-get install chromium``, as ``.ci/run`` does) and the
``playwright`` package; it skips cleanly without them. Its screenshot is kept in
``$STRESS_SCREENSHOTS`` (``.ci-out/screenshots`` in CI) as an artifact.
"""

from __future__ import annotations

import os
import shutil
import textwrap
from pathlib import Path

import pytest

from stress.integrations.cli import main

CHROMIUM = next(
    (
        p
        for p in (shutil.which("chromium"), shutil.which("chromium-browser"), "/usr/bin/chromium")
        if p and os.path.exists(p)
    ),
    None,
)

SUITE = """
import torch
import stress
from stress import st

@stress.target(x=st.logits(("B", "C"), min_value=-1e3, max_value=1e3), temp=st.temperatures(0.01, 1.0),
               expect={"fp16": "finite_forward"}, reason="exp overflows float16")
def softmax_at_a_temperature(x, temp):
    e = (x / temp).exp()
    return (e / e.sum(-1, keepdim=True)).max()

@stress.target(x=st.tensors(("B",), min_value=-20, max_value=20))
def exp_beyond_float16(x):
    return x.exp()

@stress.target(x=st.activations(("B", "D"), min_value=-1, max_value=1))
def bounded(x):
    return torch.tanh(x).mean()
"""


@pytest.fixture(scope="module")
def report_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("html")
    suite = tmp / "page.py"
    suite.write_text(textwrap.dedent(SUITE))
    main(["run", str(suite), "--profile", "ci", "--no-progress", "--report-dir", str(tmp / "r")])
    return next((tmp / "r").iterdir()) / "report.html"


@pytest.mark.skipif(CHROMIUM is None, reason="needs a Chromium binary (apt-get install chromium)")
def test_the_report_renders_without_errors_or_overflow(report_page: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    errors: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--no-first-run",
            ],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(report_page.as_uri())
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        sections = page.evaluate("Array.from(document.querySelectorAll('h2')).map(h => h.id)")
        images = page.evaluate("Array.from(document.images).map(i => i.naturalWidth > 0)")
        labels = (
            page.inner_text("#status + p + div table")
            if page.query_selector("#status + p + div table")
            else ""
        )
        out = Path(os.environ.get("STRESS_SCREENSHOTS", report_page.parent))
        out.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out / "report.png"), full_page=True)
        browser.close()
    assert errors == []
    assert overflow <= 0, f"the page is {overflow}px wider than a 1400px window"
    assert {"status", "errors", "targets", "findings", "environment"} <= set(sections)
    assert images and all(images)  # every embedded plot decodes
    for word in ("pass", "xfail", "limit"):  # text labels, readable without an emoji font
        assert word in labels
    assert (out / "report.png").stat().st_size > 10_000
