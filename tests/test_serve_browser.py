"""The explorer in a real headless Chromium: `convzoo serve` started as a user would, the
page checked by what a person sees. Skipped only when no Chromium is installed (CI
installs Debian's)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (apt-get install -y chromium)")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]  # fmt: skip
LENET = "Input->(Conv)6c5w1s0p->(MaxPool)2w2s->(Conv)16c5w1s0p->(MaxPool)2w2s->(Flat)400->120fc->84fc->10fc->(Output)"
SHOTS = Path(__file__).resolve().parents[1] / "docs" / "img"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = subprocess.Popen([sys.executable, "-m", "convzoo", "serve", "--port", "0",
                             "--runs", str(tmp_path_factory.mktemp("runs"))],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        line = proc.stdout.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert m, line + proc.stdout.read(2000) if proc.poll() is not None else line
        yield m.group(0)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        pg = browser.new_page(viewport={"width": 1200, "height": 900})
        pg.set_default_timeout(60_000)
        yield pg
        browser.close()


def _total(pg, key: str) -> str:
    return pg.inner_text(f"[data-total='{key}'] .v")


def test_lenet_chain_then_a_caret_then_vgg16(server, page):
    page.goto(server + "#source=" + urllib.request.quote(LENET))
    page.wait_for_function("document.querySelector(\"[data-total='parameters'] .v\")?.textContent === '61,706'")
    assert _total(page, "MACs") == "416,520"
    assert page.locator("#layers tbody tr").count() == 12
    page.screenshot(path=str(SHOTS / "serve-build.png"), full_page=True)

    page.fill("#source", "6c5w1s0p 2w2q")
    page.wait_for_selector("#error:not([hidden])")
    lines = page.inner_text("#error").split("\n")
    assert "unknown unit 'q'" in lines[0]
    assert lines[2].index("^") == lines[1].index("q")
    assert "stale" in page.get_attribute("#result", "class")  # the last good result stays, dimmed
    assert _total(page, "parameters") == "61,706"
    page.screenshot(path=str(SHOTS / "serve-error.png"))

    page.select_option("#picker", "vgg16")
    page.wait_for_function("document.querySelector(\"[data-total='parameters'] .v\")?.textContent === '138,357,544'")
    assert page.input_value("#input") == "3x224x224"
    assert page.locator("#error").is_hidden()


def test_a_copied_url_reopens_the_view(server, page):
    page.goto(server + "#source=lenet5&input=1x32x32&batch=1")
    page.wait_for_function("document.querySelector(\"[data-total='parameters'] .v\")?.textContent === '61,706'")
    page.fill("#batch", "64")
    page.select_option("#optimizer", "adam")
    page.wait_for_function("location.hash.includes('batch=64') && location.hash.includes('adam')")
    page.wait_for_timeout(1500)
    url, training = page.url, _total(page, "training memory (Adam)")
    page.goto("about:blank")
    page.goto(url)
    page.wait_for_selector("[data-total='training memory (Adam)']")
    page.wait_for_function(f"document.querySelector(\"[data-total='training memory (Adam)'] .v\")?.textContent === {json.dumps(training)}")
    assert page.input_value("#batch") == "64" and page.input_value("#optimizer") == "adam"


def test_cross_origin_and_foreign_host_are_refused(server):
    body = json.dumps({"source": "lenet5"}).encode()
    for headers in ({"Origin": "http://evil.example"}, {"Host": "evil.example"}):
        req = urllib.request.Request(server + "api/analyze", data=body, method="POST",
                                     headers={"Content-Type": "application/json", **headers})  # fmt: skip
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=30)
        assert err.value.code == 403 and "refused" in json.loads(err.value.read())["error"]
    ok = urllib.request.Request(server + "api/analyze", data=body, method="POST",
                                headers={"Content-Type": "application/json"})  # fmt: skip
    assert json.loads(urllib.request.urlopen(ok, timeout=60).read())["total_params"] == 61706


def test_paper_row_opens_its_module_in_build(server, page):
    page.goto(server + "#view=paper&table=googlenet")
    row = page.locator("#paper tbody tr.link", has_text="inception (4a)").first
    row.wait_for()
    assert "K" in row.inner_text() or "M" in row.inner_text()  # the published figure as printed
    page.screenshot(path=str(SHOTS / "serve-paper.png"))
    row.click()
    page.wait_for_function("location.hash.includes('source=googlenet_paper')")
    page.wait_for_selector("#layers tbody tr.pin")
    page.mouse.move(1, 1)
    names = page.locator("#layers tbody tr.pin td:first-child").all_inner_texts()
    assert names and all("4a" in n for n in names), names
    assert page.input_value("#input") == "3x224x224"
    page.screenshot(path=str(SHOTS / "serve-paper-build.png"))  # the viewport: the highlighted module
