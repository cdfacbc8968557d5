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
TIMEOUT_MS = 300_000  # generous: on a loaded 2-core machine one analysis can take many seconds


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = subprocess.Popen([sys.executable, "-m", "convzoo", "serve", "--port", "0",
                             "--runs", str(tmp_path_factory.mktemp("runs"))],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        line = proc.stdout.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert m, line + proc.stdout.read(2000) if proc.poll() is not None else line
        # the first analysis imports the engine's pieces: done here, so that a loaded machine's
        # slow first request does not eat a test's timeout
        req = urllib.request.Request(m.group(0) + "api/analyze", data=json.dumps({"source": "lenet5"}).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})  # fmt: skip
        urllib.request.urlopen(req, timeout=900).read()
        yield m.group(0)
    finally:
        proc.terminate()
        proc.wait(timeout=120)


@pytest.fixture(scope="module")
def browser(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:  # one Playwright per module: a second sync_playwright() in the thread fails
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def page(browser):
    # Playwright's wait_for_function evaluates its predicate with eval(), which the page's
    # Content-Security-Policy forbids: these pages bypass it (test_the_page_runs_under_its_csp
    # checks the page itself under the policy)
    pg = browser.new_page(viewport={"width": 1200, "height": 900}, bypass_csp=True)
    pg.set_default_timeout(TIMEOUT_MS)
    yield pg
    pg.close()


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


def _visible_text(pg, selector: str) -> dict[str, str]:
    return pg.evaluate(
        """(sel) => Object.fromEntries([...document.querySelectorAll(sel)].map((e, i) =>
             [e.getAttribute('data-total') || e.getAttribute('data-layer') || String(i), e.textContent]))""",
        selector,
    )


def test_the_batch_changes_the_training_memory_and_nothing_else(server, page):
    import convzoo

    page.goto(server + "#source=resnet20&input=3x32x32&batch=1&optimizer=sgd_momentum&dtype=float32")
    page.wait_for_function("document.querySelector(\"[data-total='parameters'] .v\")?.textContent === '269,722'")
    page.wait_for_timeout(500)
    key = "training memory (SGD with momentum)"
    cards = "#totals .card"
    rest = "#layers tbody tr, #diagram svg text, #error, #source, #input"
    before_cards, before_rest = _visible_text(page, cards), _visible_text(page, rest)
    svg_before = page.inner_html("#diagram")
    page.fill("#batch", "128")
    page.wait_for_function("location.hash.includes('batch=128')")
    page.wait_for_timeout(1000)  # a re-analysis, had there been one, would have landed
    after_cards, after_rest = _visible_text(page, cards), _visible_text(page, rest)
    changed = {k for k in before_cards if before_cards[k] != after_cards[k]}
    assert changed == {key}, changed
    assert after_rest == before_rest and page.inner_html("#diagram") == svg_before
    want = convzoo.analyze("resnet20").training_memory(128, "sgd_momentum")
    assert int(page.get_attribute(f"[data-total='{key}']", "data-value")) == want
    assert _total(page, "parameters") == "269,722" and _total(page, "MACs") == f"{convzoo.analyze('resnet20').macs:,}"


def test_the_picker_fills_the_canonical_notation(server, page):
    from convzoo.meta import meta_build
    import convzoo

    with meta_build():
        text = convzoo.create_model("vgg_a_narrow").spec_text
    page.goto(server + "#view=build&source=lenet5&input=1x32x32")
    page.wait_for_function("document.querySelector(\"[data-total='parameters'] .v\")?.textContent === '61,706'")
    page.select_option("#picker", "vgg_a_narrow")
    page.wait_for_function(f"document.getElementById('source').value === {json.dumps(text)}")
    params = f"{convzoo.analyze('vgg_a_narrow').total_params:,}"
    page.wait_for_function(f"document.querySelector(\"[data-total='parameters'] .v\")?.textContent === {json.dumps(params)}")
    assert page.input_value("#picker") == "vgg_a_narrow"
    page.select_option("#picker", "resnet20")  # no notation: the name
    page.wait_for_function("document.getElementById('source').value === 'resnet20'")


def test_the_alexnet_preset_shows_the_parameter_difference(server, page):
    page.goto(server + "#view=compare")
    page.select_option("#compare-preset", "alexnet")
    row = page.locator("#compare-totals tr[data-delta='params']")
    row.locator("td").nth(3).filter(has_text="+135,616").wait_for()
    cells = row.locator("td").all_inner_texts()
    assert cells[:4] == ["parameters", "60,965,224", "61,100,840", "+135,616"]
    assert page.input_value("#compare-a") == "alexnet_paper" and page.input_value("#compare-b") == "alexnet"
    changed = page.locator("#compare-layers tr.changed").all_inner_texts()
    assert any("width 96 -> 64" in t for t in changed), changed  # conv1: 96 kernels in the paper, 64 in torchvision's
    assert page.locator("#compare-layers tr.removed", has_text="lrn").count() == 2
    page.wait_for_timeout(300)
    page.screenshot(path=str(SHOTS / "serve-compare.png"), full_page=True)


def test_the_vgg_preset_is_successive_diffs_and_a_url_reopens_compare(server, page):
    page.goto(server + "#view=compare&preset=vgg&a=vgg_a&b=vgg_a_lrn")
    steps = page.locator("#compare-step-table tbody tr")
    steps.nth(4).locator("td").nth(4).filter(has_text="/").wait_for()
    labels = [t.split("\t")[0] for t in steps.all_inner_texts()]
    assert [t.split("\n")[0].strip() for t in labels] == ["A -> A-LRN", "A-LRN -> B", "B -> C", "C -> D", "D -> E"]
    steps.nth(3).click()  # C -> D: three 1x1 convolutions become 3x3
    page.wait_for_function("location.hash.includes('a=vgg_c') && location.hash.includes('b=vgg_d')")
    page.locator("#compare-counts", has_text="3 changed").wait_for()
    changed = page.locator("#compare-layers tr.changed").all_inner_texts()
    assert len(changed) == 3 and all("kernel 1 -> 3" in t for t in changed), changed
    # the strip is not rebuilt by a click on one of its steps: every step keeps its figures
    assert all("/" in t.split("\t")[-1] for t in steps.all_inner_texts()), steps.all_inner_texts()
    assert "on" in (steps.nth(3).get_attribute("class") or "") and "on" not in (steps.nth(0).get_attribute("class") or "")
    page.screenshot(path=str(SHOTS / "serve-compare-vgg.png"), full_page=True)
    page.fill("#compare-b", "16c3w1s1p 2w2s")  # either side may be notation
    page.fill("#compare-ia", "3x32x32")
    page.wait_for_function("location.hash.includes('ia=3x32x32')")
    page.locator("#compare-title", has_text="B: notation").wait_for()
    url, totals = page.url, page.inner_text("#compare-totals")
    page.goto("about:blank")
    page.goto(url)
    page.locator("#compare-title", has_text="B: notation").wait_for()
    page.wait_for_function(f"document.getElementById('compare-totals').innerText === {json.dumps(totals)}")
    assert page.input_value("#compare-b") == "16c3w1s1p 2w2s" and page.input_value("#compare-ia") == "3x32x32"
    assert page.is_visible("#compare-view") and not page.is_visible("#build-view")


def test_the_units_preset_compares_resnet20_with_each_variant(server, page):
    page.goto(server + "#view=compare")
    page.select_option("#compare-preset", "units")
    steps = page.locator("#compare-step-table tbody tr")
    steps.nth(3).locator("td").nth(4).filter(has_text="/").wait_for()
    names = [t.split("\t")[0].strip() for t in steps.all_inner_texts()]
    assert [n.split(" -> ")[1] for n in names] == ["bn_after_add", "relu_before_add", "relu_only_preact", "full_preact"]
    page.screenshot(path=str(SHOTS / "serve-compare-units.png"))


def test_a_cross_origin_page_cannot_post_to_the_api(server, browser):
    # the same server under another origin (localhost vs 127.0.0.1): a page there that
    # POSTs to 127.0.0.1 is refused (the preflight or the request gets a 403)
    other = server.replace("127.0.0.1", "localhost")
    pg = browser.new_page()
    try:
        pg.goto(other)
        result = pg.evaluate(
            """async (url) => { try { const r = await fetch(url, { method: 'POST', body: '{"source": "lenet5"}',
                 headers: { 'Content-Type': 'application/json' } }); return 'status ' + r.status; }
               catch (e) { return 'refused: ' + e.message; } }""",
            server + "api/analyze",
        )
        assert result.startswith("refused") or result == "status 403", result
        simple = pg.evaluate(  # a "simple" request needs no preflight: the server itself says no
            """async (url) => { try { const r = await fetch(url, { method: 'POST', mode: 'no-cors', body: 'x' });
               return r.type; } catch (e) { return 'refused'; } }""",
            server + "api/analyze",
        )
        assert simple in ("opaque", "refused")
    finally:
        pg.close()
    body = json.dumps({"source": "lenet5"}).encode()
    req = urllib.request.Request(server + "api/analyze", data=body, method="POST",
                                 headers={"Content-Type": "text/plain", "Origin": other.rstrip("/")})  # fmt: skip
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=60)
    assert err.value.code == 403


def test_the_page_runs_under_its_csp(server, browser):
    pg = browser.new_page(viewport={"width": 1200, "height": 900})
    messages: list[str] = []
    pg.on("console", lambda m: messages.append(m.text))
    pg.on("pageerror", lambda e: messages.append(str(e)))
    try:
        pg.set_default_timeout(TIMEOUT_MS)
        pg.goto(server + "#source=" + urllib.request.quote(LENET))
        pg.locator("[data-total='parameters'] .v", has_text="61,706").wait_for()
        pg.goto(server + "#view=compare&a=lenet5&b=lenet5_paper")
        pg.locator("#compare-totals tr[data-delta='params']").wait_for()
        pg.goto(server + "#view=paper&table=lenet")
        pg.locator("#paper tbody tr").first.wait_for()
    finally:
        pg.close()
    assert not [m for m in messages if "Content Security Policy" in m or "Refused" in m], messages
