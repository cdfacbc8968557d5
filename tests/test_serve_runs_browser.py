"""The Runs, Inside and Train views in a real headless Chromium (Debian's, through Playwright):
`convzoo serve` started as a user would, on small IDX files this test writes; a tiny training
started from the page grows on the chart, is stopped (SIGINT), resumed (--resume) and
finishes; the shipped lenet5 shows 6 filters and the feature maps and prediction of a test
image; traversal and cross-origin requests are refused. Skipped only without Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from test_serve_runs_api import _fake_run, _tiny_fashion

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (apt-get install -y chromium)")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]  # fmt: skip
SHOTS = Path(__file__).resolve().parents[1] / "docs" / "img"
SLOW = 600_000  # ms: a training subprocess on a loaded 2-core machine (minutes just to import torch there)


@pytest.fixture(scope="module")
def server(tmp_path_factory, fashion_mnist_dir):
    base = tmp_path_factory.mktemp("serve-runs")
    _tiny_fashion(base / "data", fashion_mnist_dir, 1000, 100)
    runs = base / "runs"
    exp = runs / "degradation-smoke"
    for name, acc in (("plain20-s0", 60.0), ("resnet20-s0", 70.0)):
        f = _fake_run(exp / "runs" / name, epochs=3, done=3, model=name.split("-")[0])
        (f / "metrics.jsonl").write_text("".join(json.dumps(
            {"kind": "epoch", "epoch": e, "step": 10 * e, "train_top1": acc + 8 * e, "test_top1": acc + 5 * e,
             "train_loss": 1.0 / e, "test_loss": 1.2 / e}) + "\n" for e in (1, 2, 3)))  # fmt: skip
    (exp / "results.json").write_text(json.dumps({
        "experiment": "degradation", "title": "Deeper plain nets train worse", "claim": "plain-56 errs more than plain-20",
        "scale": "smoke", "verdicts": ["resnet20 beats plain20 by 5.0 points"],
        "rows": [{"run": "plain20", "model": "plain20", "test_error": 25.0}, {"run": "resnet20", "model": "resnet20", "test_error": 15.0}],
        "runs": {"plain20": [str(exp / "runs" / "plain20-s0")], "resnet20": [str(exp / "runs" / "resnet20-s0")]}}))  # fmt: skip
    env = {**os.environ, "CONVZOO_DATA": str(base / "data"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "convzoo", "serve", "--port", "0", "--runs", str(runs)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)  # fmt: skip
    try:
        line = proc.stdout.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert m, line + proc.stdout.read(2000) if proc.poll() is not None else line
        yield m.group(0)
    finally:
        proc.terminate()  # the server stops its trainer (SIGINT) on the way out
        proc.wait(timeout=60)


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        pg = browser.new_page(viewport={"width": 1200, "height": 900})
        pg.set_default_timeout(SLOW)
        yield pg
        browser.close()


def _points(page) -> int:
    return int(page.evaluate("document.querySelector('#train-chart svg')?.dataset.points || '0'"))


def _fill(page, **fields: str) -> None:
    """Type into the Train form's fields (`log_every` is `#train-log-every`)."""
    for name, value in fields.items():
        page.fill(f"#train-{name.replace('_', '-')}", value)


def test_train_from_the_page_grows_live_stops_resumes_finishes(server, page):
    page.goto(server + "#view=train")
    # resnet20, 100 steps an epoch: an epoch lasts seconds even on a fast machine, so the page's
    # 1 s polls see it grow (lenet5 on 200 images finished an epoch between two polls in CI)
    _fill(page, model="resnet20", data="fashion-mnist", epochs="4", batch="10")
    page.click("#train-form details summary")
    _fill(page, subset="1000", threads="1", name="page-run", log_every="5")
    page.select_option("#train-x", "step")
    page.click("#train-start")
    page.wait_for_selector("#train-status[data-status='running']")
    # the chart grows while the run trains: several sizes seen before the first epoch ends
    seen = set()
    end = time.monotonic() + SLOW / 1000
    while time.monotonic() < end and not page.locator("#train-chart g[data-kind='test']").count():
        seen.add(_points(page))
        page.wait_for_timeout(150)
    assert page.locator("#train-chart g[data-kind='test']").count(), "the first epoch never appeared"
    seen.add(_points(page))
    assert len(seen - {0}) >= 2, f"the chart did not grow live: {sorted(seen)}"
    page.screenshot(path=str(SHOTS / "serve-runs-train.png"), full_page=True)
    page.click("#train-stop")
    page.wait_for_selector("#train-status[data-status='interrupted']")
    stopped_at = page.inner_text("#train-status")
    assert "epoch 4 of 4" not in stopped_at, stopped_at
    page.click("#train-resume")
    page.wait_for_selector("#train-status[data-status='finished']")
    assert "epoch 4 of 4" in page.inner_text("#train-status")
    assert page.locator("#train-output").is_hidden()
    # the run is in the Runs list, finished, and its curves open there
    page.goto(server + "#view=runs")
    row = page.locator("#runs-table tr[data-run='page-run']")
    row.wait_for()
    assert "finished" in row.inner_text() and "4/4" in row.inner_text()
    row.locator("a.run-link").click()
    page.wait_for_selector("#runs-chart g[data-kind='test'][data-n='4']")
    page.screenshot(path=str(SHOTS / "serve-runs.png"), full_page=True)


def test_experiment_output_overlays_its_runs(server, page):
    page.goto(server + "#view=runs")
    page.locator("a.exp-link", has_text="degradation-smoke").click()
    page.wait_for_selector("#experiment-detail:not([hidden])")
    assert "resnet20 beats plain20" in page.inner_text("#experiment-verdicts")
    assert page.locator("#experiment-table tbody tr").count() == 2
    page.select_option("#runs-metric", "error")
    assert page.locator("#experiment-chart g[data-kind='test']").count() == 2
    assert "100 - accuracy" in page.inner_text("#experiment-chart")
    page.locator("#experiment-detail").screenshot(path=str(SHOTS / "serve-runs-experiment.png"))


def test_inside_the_shipped_lenet5(server, page):
    page.goto(server + "#view=inside")
    page.wait_for_selector("#inside-source option[value='weights:lenet5.fashion-mnist']", state="attached")
    page.select_option("#inside-source", "weights:lenet5.fashion-mnist")
    page.locator("#filters .filter").nth(5).wait_for()  # locators, not wait_for_function: the page's CSP forbids eval
    assert page.locator("#filters .filter").count() == 6
    page.wait_for_selector("#inside-predicted")
    assert page.inner_text("#inside-input .caption") == "test image 0: Ankle boot"  # the real first test image
    assert page.inner_text("#inside-predicted") == "predicted: Ankle boot"
    assert page.locator("#top5 .bar").count() == 5
    assert page.locator("#stages .stage").count() >= 2
    assert page.locator("#stages .stage").first.locator("img").count() == 6
    assert page.locator("#filters .filter.strong").count() >= 1
    page.select_option("#inside-class", "Trouser")
    page.wait_for_selector("#inside-input .caption:has-text('Trouser')")
    page.click("#confusion-run")
    page.wait_for_selector("#confusion tbody tr")
    assert page.locator("#confusion tbody tr").count() == 10
    assert "over 100 test images" in page.inner_text("#confusion caption")
    page.screenshot(path=str(SHOTS / "serve-runs-inside.png"), full_page=True)


def test_traversal_and_cross_origin_start_are_refused(server):
    def call(path, *, data=None, headers=None):
        req = urllib.request.Request(server + path, data=data, method="POST" if data is not None else "GET",
                                     headers={"Content-Type": "application/json", **(headers or {})})  # fmt: skip
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    for path in ("api/run?path=../../etc", "api/run?path=%2Fetc%2Fpasswd", "api/inside/filters?source=run:../x"):
        code, body = call(path)
        assert code == 400 and body["error"], (path, body)
    token = call("api/session")[1]["token"]
    start = json.dumps({"model": "lenet5", "data": "fashion-mnist", "name": "evil"}).encode()
    code, body = call("api/train", data=start, headers={"Origin": "http://evil.example", "X-Convzoo-Token": token})
    assert code == 403 and "cross-origin" in body["error"]
    code, body = call("api/train", data=start)  # same origin, no token
    assert code == 403 and "token" in body["error"]


def test_a_network_typed_in_the_build_view_trains_from_the_page(server, page):
    """Build -> Train it -> Start: the lecture's LeNet in its notation, measured at 1x32x32,
    trains with that input side and lands in the Runs list under its own text."""
    text = "6c5w1s0p 2w2s 16c5w1s0p 2w2s (Flat)400 120fc 84fc 10fc"
    page.goto(server + "#view=build")
    page.fill("#source", text)
    page.fill("#input", "1x32x32")
    page.wait_for_selector("#layers tbody tr")
    page.click("#train-it")
    page.wait_for_selector("#train-view:not([hidden])")
    assert page.input_value("#train-model") == text
    if page.get_attribute("#train-form details", "open") is None:  # the page is not reloaded between tests
        page.click("#train-form details summary")
    assert page.input_value("#train-input-size") == "32"
    _fill(page, data="fashion-mnist", epochs="1", batch="50", subset="200", threads="1", name="notation-run")
    page.click("#train-start")
    page.wait_for_selector("#train-status[data-status='finished']")
    page.goto(server + "#view=runs")
    row = page.locator("#runs-table tr[data-run='notation-run']")
    row.wait_for()
    assert text in row.inner_text() and "finished" in row.inner_text()
