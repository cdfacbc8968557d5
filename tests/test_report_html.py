"""`convzoo report` writes one self-contained HTML page that a real browser renders.

Headless Chromium (Debian's `chromium`; `.ci/run` installs it) opens the page from a file
URL with the network effectively off. A small script, added to a copy of the page by the
test only, waits for the load event and writes into the DOM how many images there are, how
many decoded (naturalWidth > 0) and any error the page raised; `--dump-dom` returns it and
`--screenshot` (same launch) must show a non-blank page. Chromium's console log on stderr
must hold no error from the page.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"

PROBE = """<script>
(function () {
  var errors = [];
  window.addEventListener("error", function (e) { errors.push(String(e.message || e.type)); }, true);
  window.addEventListener("load", function () {
    var imgs = Array.prototype.slice.call(document.images);
    var r = {images: imgs.length, decoded: imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length,
             widths: imgs.map(function (i) { return i.naturalWidth; }), svgs: document.querySelectorAll("svg").length,
             tables: document.querySelectorAll("table").length, errors: errors};
    var p = document.createElement("pre"); p.id = "probe-result"; p.textContent = JSON.stringify(r);
    document.body.appendChild(p);
  });
})();
</script>"""


def open_in_chromium(html: Path, tmp: Path) -> tuple[dict, Path, str]:
    """(probe result, screenshot path, Chromium's stderr) for the page `html`."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install -y chromium); CI installs it")
    probed = tmp / f"probed-{html.name}"
    text = html.read_text(encoding="utf-8")
    probed.write_text(text.replace("<head>", "<head>\n" + PROBE, 1), encoding="utf-8")
    shot = tmp / f"{html.stem}.png"
    cmd = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp / 'chromium-profile'}", "--enable-logging=stderr", "--v=0",
        "--virtual-time-budget=10000", "--window-size=1200,1600", f"--screenshot={shot}", "--dump-dom",
        probed.as_uri(),
    ]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    m = re.search(r'<pre id="probe-result">(.*?)</pre>', res.stdout, re.S)
    assert m, "the page did not finish loading (no probe result in the DOM)"
    import html as htmllib

    return json.loads(htmllib.unescape(m.group(1))), shot, res.stderr


def page_console_errors(stderr: str, page: Path) -> list[str]:
    """Console messages from the page (a report has no script, so any is a fault: Chromium's
    stderr log does not show their severity) and failed resource loads."""
    bad = []
    for line in stderr.splitlines():
        if "CONSOLE" in line and page.name in line:
            bad.append(line)
        if "Failed to load resource" in line or "net::ERR_" in line or "Not allowed to load" in line:
            bad.append(line)
    return bad


def assert_not_blank(shot: Path) -> None:
    from PIL import Image, ImageStat

    assert shot.is_file() and shot.stat().st_size > 5000, "empty screenshot"
    with Image.open(shot) as im:
        stat = ImageStat.Stat(im.convert("L"))
        assert stat.stddev[0] > 10, f"the screenshot looks blank (pixel std {stat.stddev[0]:.1f})"


def assert_self_contained(text: str) -> None:
    # every src/href is a data: URI or a fragment; no script, stylesheet or font from elsewhere
    for attr in re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', text):
        assert attr.startswith("data:") or attr.startswith("#"), f"external resource {attr[:80]!r}"
    assert "<script" not in text.lower(), "the report should need no script"
    assert "@import" not in text and "url(http" not in text


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, fashion_mnist_dir) -> Path:
    """A real two-epoch LeNet-5 run on 64 images (checkpoint + metrics in the trainer's format)."""
    from convzoo.train import TrainConfig, train

    out = tmp_path_factory.mktemp("report-run")
    cfg = TrainConfig(model="lenet5", data="fashion-mnist", data_dir=fashion_mnist_dir, epochs=2, subset=64,
                      batch_size=32, input_size=32, augment="none", out=str(out), name="lenet5", log_every=1)
    return Path(train(cfg, progress=False))


def test_run_report_renders_in_chromium(trained_run, tmp_path):
    from convzoo.cli import main

    out = tmp_path / "report.html"
    assert main(["report", str(trained_run), "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert_self_contained(text)
    for section in ("Summary", "Memory", "Architecture", "Training run"):
        assert f"<h2>{section}</h2>" in text
    # memory figure, architecture, curves, filters
    assert text.count("data:image/png;base64,") == 4

    result, shot, stderr = open_in_chromium(out, tmp_path)
    assert result["errors"] == []
    assert result["images"] == 4 and result["decoded"] == 4, result
    assert min(result["widths"]) > 100
    assert result["tables"] >= 4
    assert page_console_errors(stderr, out) == []
    assert_not_blank(shot)


def test_probe_catches_a_broken_image(tmp_path):
    """The checks above can fail: an image that does not decode and a script error are caught."""
    from convzoo.viz.html import HtmlReport

    page = HtmlReport("broken")
    page.paragraph("an image that is not a PNG")
    page.figure(b"not a png at all", caption="broken")
    page.raw("<script>throw new Error('boom');</script>")
    out = page.write(tmp_path / "broken.html")
    result, _, stderr = open_in_chromium(out, tmp_path)
    assert result["images"] == 1 and result["decoded"] == 0
    assert result["errors"] and any("boom" in line for line in page_console_errors(stderr, out))


def test_model_report_is_self_contained(tmp_path):
    """`convzoo report MODEL` (no run): summary, memory table, architecture; nothing external."""
    from convzoo.cli import main

    out = tmp_path / "lenet5.html"
    assert main(["report", "lenet5", "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert_self_contained(text)
    assert "61,706" in text and "416,520" in text  # parameters and MACs of the lecture's LeNet-5
    assert "<h2>Training run</h2>" not in text
    assert text.count("data:image/png;base64,") == 2


def test_report_errors(tmp_path, capsys):
    from convzoo.cli import main

    assert main(["report", "lenet5", "--out", str(tmp_path / "x.pdf")]) == 2
    assert main(["report", "lenet9", "--out", str(tmp_path / "x.html")]) == 2
    err = capsys.readouterr().err
    assert ".html" in err and "lenet5" in err and "Traceback" not in err


def test_html_table_cells():
    """Numbers are right-aligned and formatted, missing values shown as a dash, text escaped."""
    from convzoo.viz.html import HtmlReport

    page = HtmlReport("t")
    page.table([{"a": 1234, "b": 2.5, "c": None, "d": "<b>"}], ["a", "b", "c", "d"])
    text = page.render()
    assert '<td class="num">1,234</td>' in text and '<td class="num">2.50</td>' in text and "<td>–</td>" in text
    assert "<td>&lt;b&gt;</td>" in text
