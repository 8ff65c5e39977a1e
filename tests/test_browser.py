"""The widgets in a real browser: JupyterLab on 127.0.0.1, driven through Chromium by Playwright.

nbval executes the notebooks but renders nothing; this test checks that a learner actually sees the
widgets and that the plots follow the controls. On failure, screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
REQUIRE_ENV = "ACTLAB_REQUIRE_BROWSER"
"""Set (as .ci/run does) to make a missing browser a failure instead of a skip."""
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]
RUN_TIMEOUT_MS = 120_000
RUN_UP_TO_WHEN_CONNECTED = """async (cellId) => {
    const notebook = window.jupyterapp.shell.currentWidget;
    await notebook.context.ready;
    await notebook.sessionContext.ready;
    const connected = () => notebook.sessionContext.session?.kernel?.connectionStatus === "connected";
    while (!connected()) {
        await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const index = notebook.content.widgets.findIndex((cell) => cell.model.id === cellId);
    if (index < 0) {
        throw new Error(`no cell ${cellId}`);
    }
    notebook.content.activeCellIndex = index + 1;
    await window.jupyterapp.commands.execute("notebook:run-all-above");
}"""
"""Runs a notebook from the top to the cell with the given id, and no further: the widgets tested are there."""


def find_chromium() -> str | None:
    """A Chromium on the PATH, else one that Playwright installed, else None."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    if importlib.util.find_spec("playwright") is not None:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            bundled = playwright.chromium.executable_path
        if bundled and Path(bundled).exists():
            return bundled
    return None


def require_tools() -> str:
    """The Chromium to drive; skips (fails where ``ACTLAB_REQUIRE_BROWSER`` is set) when a tool is missing."""
    missing = []
    for module, package in (("playwright", "playwright"), ("jupyterlab", "jupyterlab")):
        if importlib.util.find_spec(module) is None:
            missing.append(f"the Python package {package} (pip install -r requirements-dev.txt)")
    chromium = find_chromium() if not missing else None
    if chromium is None:
        missing.append(f"Chromium on the PATH ({', '.join(CHROMIUM_NAMES)}; on Debian or Ubuntu: "
                       "sudo apt-get install chromium)")
    if missing:
        reason = "The browser test needs " + " and ".join(missing) + "."
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(f"{reason} {REQUIRE_ENV} is set, so it may not be skipped.", pytrace=False)
        pytest.skip(reason)
    assert chromium is not None
    return chromium


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def chromium() -> str:
    return require_tools()


@pytest.fixture(scope="module")
def lab(tmp_path_factory, chromium):
    """A JupyterLab server on a copy of the notebooks, so that autosave never touches the originals."""
    home = tmp_path_factory.mktemp("lab")
    notebooks = home / "notebooks"
    shutil.copytree(ROOT / "notebooks", notebooks, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    settings = home / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    (settings / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    port, token = free_port(), secrets.token_hex(16)
    log = (home / "jupyterlab.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={notebooks}",
         "--LabApp.expose_app_in_browser=True", f"--LabApp.workspaces_dir={home / 'workspaces'}",
         f"--LabApp.user_settings_dir={home / 'settings'}"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start; see {home / 'jupyterlab.log'}", pytrace=False)
                time.sleep(0.5)
        yield url, token
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


@pytest.fixture
def page(lab, chromium, request):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(RUN_TIMEOUT_MS)
        try:
            yield page
        finally:
            report = getattr(request.node, "rep_call", None)
            if report is None or report.failed:
                ARTIFACTS.mkdir(exist_ok=True)
                with contextlib.suppress(Exception):
                    page.screenshot(path=ARTIFACTS / f"{request.node.name}.png", full_page=True)
            browser.close()


def open_and_run(page, lab, notebook: str, up_to: str) -> None:
    """Open ``notebook`` in JupyterLab and run its cells down to the one with id ``up_to``."""
    url, token = lab
    workspace = notebook.removesuffix(".ipynb")
    page.goto(f"{url}/lab/workspaces/{workspace}/tree/{notebook}?reset&token={token}")
    page.wait_for_function("window.jupyterapp && document.querySelector('.jp-Notebook')")
    page.evaluate(RUN_UP_TO_WHEN_CONNECTED, up_to)


def image_of(widget) -> str:
    return widget.locator("img.widget-image").first.get_attribute("src", timeout=RUN_TIMEOUT_MS)


def wait_for_new_image(widget, before: str) -> str:
    from playwright.sync_api import expect

    expect(widget.locator("img.widget-image").first).not_to_have_attribute("src", before, timeout=30_000)
    return image_of(widget)


def nudge_slider(widget, label: str, presses: int = 5) -> None:
    slider = widget.locator(".widget-slider", has=widget.page.locator(".widget-label", has_text=label)).first
    handle = slider.locator(".noUi-handle").first
    handle.focus()
    for _ in range(presses):
        handle.press("ArrowRight")


PNG_OF_IMAGE = """async img => {
    const bytes = new Uint8Array(await (await fetch(img.src)).arrayBuffer());
    let text = "";
    for (const byte of bytes) text += String.fromCharCode(byte);
    return btoa(text);
}"""
"""The bytes of an image element's picture (a blob or data URL), base64-encoded, read inside the page."""


def palette_pixels(widget) -> dict[str, int]:
    """Per activation, the pixels of ``widget``'s picture in its palette colour (within 6 per channel)."""
    import base64
    import io

    import numpy as np
    from matplotlib.image import imread

    from actlab.plotting import PALETTE

    png = base64.b64decode(widget.locator("img.widget-image").first.evaluate(PNG_OF_IMAGE))
    pixels = imread(io.BytesIO(png), format="png")[..., :3] * 255
    return {name: int((np.abs(pixels - [int(colour[i:i + 2], 16) for i in (1, 3, 5)]) <= 6).all(-1).sum())
            for name, colour in PALETTE.items()}


def widget_with(page, selector: str):
    """The first widget box whose controls include ``selector``, once it has drawn its plot."""
    box = page.locator(".jp-OutputArea-output .widget-vbox", has=page.locator(selector)).first
    box.locator("img.widget-image").first.wait_for(state="attached")
    box.scroll_into_view_if_needed()
    return box


def test_activation_explorer_responds(page, lab):
    open_and_run(page, lab, "01_activation_functions.ipynb", up_to="c18")
    explorer = widget_with(page, ".widget-dropdown select")
    first = image_of(explorer)
    explorer.locator(".widget-dropdown select").select_option(label="elu")
    after_dropdown = wait_for_new_image(explorer, first)
    found = palette_pixels(explorer)
    assert found["elu"] > 500, found  # ELU drawn in its own colour of the palette, and in no other
    assert max(count for name, count in found.items() if name != "elu") < 20, found
    nudge_slider(explorer, "alpha")
    wait_for_new_image(explorer, after_dropdown)
    from playwright.sync_api import expect

    solution = page.locator(".jp-Cell", has_text="x_half = softplus.x").first
    expect(solution).to_be_hidden()  # folded under its heading until a student opens it
    expect(page.locator(".jp-Cell", has_text="Solution to exercise 1").first).to_be_visible()


def test_gradient_widgets_respond(page, lab):
    open_and_run(page, lab, "03_gradient_flow.ipynb", up_to="c18")
    histograms = widget_with(page, ".widget-dropdown select")
    first = image_of(histograms)
    histograms.locator(".widget-dropdown select").select_option(label="relu")
    wait_for_new_image(histograms, first)
    depth = widget_with(page, ".widget-slider .noUi-handle")
    before = image_of(depth)
    nudge_slider(depth, "hidden layers", presses=2)
    wait_for_new_image(depth, before)


def test_a_missing_browser_skips_with_its_reason_unless_required(monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "find_chromium", lambda: None)
    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="Chromium on the PATH"):
        require_tools()
    monkeypatch.setenv(REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match=f"{REQUIRE_ENV} is set"):
        require_tools()
