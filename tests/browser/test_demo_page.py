"""The demo page in a real Chromium: EventSource streams, survives a cut connection
(reconnecting with Last-Event-ID by itself), and the text equals the full reply."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from tests.e2e.stack import Stack

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None and not os.environ.get("CI"):
    pytest.skip("Debian's chromium is not installed (CI installs it)", allow_module_level=True)

from playwright.sync_api import Page, sync_playwright  # noqa: E402

# Flags for a sandboxed root session with no network beyond loopback.
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack({"streams.retry_ms": 300}) as s:
        yield s


@pytest.fixture(scope="module")
def page() -> Iterator[Page]:
    assert CHROMIUM is not None, "chromium must be installed for the browser tests"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser.new_page()
        browser.close()


def cut_subscribers(stack: Stack) -> int:
    def cut() -> int:
        gateway = stack.server.gateway  # type: ignore[union-attr]
        cut = 0
        for resumable in gateway.store.values():
            for subscriber in list(resumable.output.subscribers):
                subscriber._conn.abort()
                cut += 1
        return cut

    return stack.run_sync(cut)


def test_page_streams_and_resumes_after_a_cut(stack: Stack, page: Page) -> None:
    page.goto(stack.url + "/")
    page.fill("#prompt", '#fake {"tokens": 60, "rate": 40}')
    page.click("#send")
    page.wait_for_function("Number(document.getElementById('events').textContent) > 10",
                           timeout=10_000)
    assert cut_subscribers(stack) == 1  # the server drops the connection mid-stream
    page.wait_for_selector("body[data-state=done]", timeout=20_000)
    text = page.text_content("#output")
    assert text == "".join(f"tok{i} " for i in range(60))  # nothing lost, nothing doubled
    assert int(page.text_content("#reconnects") or 0) >= 1
    assert page.text_content("#status") == "done"
    page.screenshot(path=os.environ.get("SSESERVER_SCREENSHOT", "/tmp/sseserver-demo.png"))


def test_stop_button_cancels_the_generation(stack: Stack, page: Page) -> None:
    stack.reset_fake()
    page.goto(stack.url + "/")
    page.fill("#prompt", '#fake {"tokens": 1000, "rate": 20}')
    page.click("#send")
    page.wait_for_function("Number(document.getElementById('events').textContent) > 3",
                           timeout=10_000)
    page.click("#stop")
    page.wait_for_selector("body[data-state=done]", timeout=10_000)
    assert "cancelled" in (page.text_content("#status") or "")
    stats, _ = stack.wait_for(lambda s: s["cancelled"] == 1, timeout=5)
    assert stats["cancelled"] == 1
