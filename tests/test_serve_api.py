"""The explorer's API through Starlette's test client: bodies equal the library's dicts,
user errors are 400 with a message, foreign hosts and origins are refused."""

from __future__ import annotations

import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")
from starlette.testclient import TestClient  # noqa: E402

import convzoo  # noqa: E402
from convzoo.serve import create_app  # noqa: E402

LENET = "Input->(Conv)6c5w1s0p->(MaxPool)2w2s->(Conv)16c5w1s0p->(MaxPool)2w2s->(Flat)400->120fc->84fc->10fc->(Output)"


@pytest.fixture(scope="module")
def client():
    return TestClient(create_app(runs_dir="runs"), base_url="http://127.0.0.1:8765")


def test_every_model_analyze_equals_the_library(client):
    names = [r["name"] for r in client.get("/api/models").json()]
    assert names and set(names) == set(convzoo.list_models())
    for name in names:
        got = client.post("/api/analyze", json={"source": name})
        assert got.status_code == 200, got.text
        assert got.json() == convzoo.analyze(name).to_dict(), name


def test_notation_spec_paper_compare(client):
    r = client.post("/api/analyze", json={"source": LENET, "input": "1x32x32"}).json()
    assert r["total_params"] == 61_706 and r["macs"] == 416_520
    s = client.post("/api/spec", json={"text": LENET}).json()
    assert s["total_params"] == 61_706
    p = client.get("/api/paper/lenet").json()
    assert p["table"] == "lenet" and p["rows"][0]["model"] == "lenet5"
    c = client.post("/api/compare", json={"a": "alexnet_paper", "b": "alexnet"}).json()
    assert c["delta"]["params"] == 135_616


@pytest.mark.parametrize(
    "path,payload,needle",
    [
        ("/api/analyze", {"source": "6c5w1s0p 2w2q"}, "unknown unit 'q'"),
        ("/api/analyze", {"source": "x" * 10_001}, "at most 10,000"),
        ("/api/analyze", {"source": "(Conv)1c1w1s0p*2001"}, "at most 2,000"),
        ("/api/analyze", {"source": "lenet5", "input": [1, 5000, 32]}, "at most 4096"),
        ("/api/analyze", {"source": "lenet5", "batch_size": 70_000}, "at most 65,536"),
        ("/api/analyze", {"source": "lenet5", "input": [1, 8, 8]}, "too small"),
        ("/api/analyze", {"source": "lenet5", "dtype": "int8"}, "dtype"),
        ("/api/analyze", {"source": "nosuchnet(unit=a)"}, ""),
        ("/api/compare", {"a": "lenet5"}, "b must be"),
        ("/api/spec", {"text": 3}, "text must be"),
        ("/api/analyze", {}, "source must be"),
        ("/api/analyze", {"source": "   "}, "source must be"),
        ("/api/analyze", {"source": "lenet5", "input": "1x32"}, "three positive integers"),
        ("/api/analyze", {"source": "lenet5", "input": "axbxc"}, "three positive integers"),
        ("/api/analyze", {"source": "lenet5", "input": {"c": 1}}, "input must be"),
        ("/api/analyze", {"source": "lenet5", "input": [0, 32, 32]}, "three positive integers"),
        ("/api/analyze", {"source": "lenet5", "batch_size": True}, "batch_size must be"),
        ("/api/analyze", {"source": "lenet5", "batch_size": 0}, "batch_size must be"),
        ("/api/analyze", {"source": "lenet5", "batch_size": "8"}, "batch_size must be"),
        ("/api/analyze", {"source": "resnet20(unit=sideways)"}, "sideways"),
        ("/api/analyze", {"source": "resnet20(num_classes=true)"}, "cannot be set here"),
        ("/api/analyze", {"source": "resnet20(depth=3)"}, "only names and true/false"),
        ("/api/analyze", {"source": "6c5w1s0p 2w2s", "input": [1, 4, 4]}, "4x4"),
        ("/api/compare", {"a": "lenet5", "b": "6c5w1s0p 2w2q"}, "unknown unit 'q'"),
        ("/api/compare", {"a": "lenet5", "b": "alexnet", "input_a": "1x5000x5000"}, "at most 4096"),
        ("/api/compare", {"a": "lenet5", "b": "alexnet", "batch_size": 70_000}, "at most 65,536"),
        ("/api/compare", {"a": "lenet5", "b": "alexnet", "dtype": "float16"}, "dtype must be"),
        ("/api/compare", {"a": "x" * 10_001, "b": "alexnet"}, "at most 10,000"),
        ("/api/spec", {"text": "6c5w1s0p 2w2q"}, "unknown unit 'q'"),
        ("/api/spec", {"text": "lenet5", "input": "big"}, "three positive integers"),
    ],
)
def test_user_errors_are_400(client, path, payload, needle):
    r = client.post(path, json=payload)
    assert r.status_code == 400, r.text
    assert needle in r.json()["error"]


def test_notation_error_carries_the_position(client):
    r = client.post("/api/analyze", json={"source": "6c5w1s0p 2w2q"})
    assert r.json()["position"] == 12


def test_body_limit_host_and_origin(client):
    r = client.post("/api/analyze", content=b"{" + b" " * 1_100_000 + b"}", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "1,000,000" in r.json()["error"]
    assert client.get("/api/models", headers={"host": "evil.example:8765"}).status_code == 403
    r = client.post("/api/analyze", json={"source": "lenet5"}, headers={"origin": "http://evil.example"})
    assert r.status_code == 403
    ok = client.post("/api/analyze", json={"source": "lenet5"}, headers={"origin": "http://127.0.0.1:8765"})
    assert ok.status_code == 200
    assert client.get("/api/paper/nope").status_code == 400


@pytest.mark.parametrize(
    "raw,needle",
    [(b"not json", "must be JSON"), (b"[1, 2]", "JSON object"), (b'"lenet5"', "JSON object"), (b"\xff\xfe", "must be JSON")],
)
def test_bodies_that_are_not_json_objects_are_400(client, raw, needle):
    for path in ("/api/analyze", "/api/compare", "/api/spec"):
        r = client.post(path, content=raw, headers={"content-type": "application/json"})
        assert r.status_code == 400 and needle in r.json()["error"], (path, r.text)


def test_get_routes_errors_are_400(client):
    for path, needle in (("/api/paper/nope", "nope"), ("/api/notation/nosuchnet", "unknown model")):
        r = client.get(path)
        assert r.status_code == 400 and needle in r.json()["error"], r.text


def test_compare_notation_error_carries_the_position(client):
    r = client.post("/api/compare", json={"a": "lenet5", "b": "6c5w1s0p 2w2q"})
    assert r.status_code == 400 and r.json()["position"] == 12


def test_per_layer_saved_bytes_sum_to_the_total(client):
    r = client.post("/api/analyze", json={"source": "resnet20"}).json()
    assert all("saved_bytes" in row for row in r["layers"])
    assert sum(row["saved_bytes"] for row in r["layers"]) == r["memory"]["saved_activation_bytes"]


def test_batch_scales_memory_not_the_counts(client):
    one = client.post("/api/analyze", json={"source": "lenet5"}).json()
    many = client.post("/api/analyze", json={"source": "lenet5", "batch_size": 64}).json()
    assert many["total_params"] == one["total_params"] and many["macs"] == 64 * one["macs"]
    # what the page shows for batch 64 from the batch-1 report: Report.training_memory(64, ...)
    m = one["memory"]
    for opt in ("sgd", "sgd_momentum", "adam"):
        page = m["param_bytes"] + m["buffer_bytes"] + m["gradient_bytes"] + m["optimizer_state_bytes"][opt] \
            + 64 * (m["input_bytes"] + m["saved_activation_bytes"])  # fmt: skip
        assert page == convzoo.analyze("lenet5").training_memory(64, opt)
        assert abs(page - many["memory"]["training_bytes_by_optimizer"][opt]) <= 0.01 * page


def test_canonical_notation(client):
    assert client.get("/api/notation/lenet5").json() == {"model": "lenet5", "notation": None}
    from convzoo.meta import meta_build

    for name in convzoo.list_models():
        with meta_build():
            text = getattr(convzoo.create_model(name), "spec_text", None)
        if text is not None:
            got = client.get(f"/api/notation/{name}").json()
            assert got["notation"] == text
            a = client.post("/api/analyze", json={"source": text}).json()
            b = client.post("/api/analyze", json={"source": name}).json()
            assert (a["total_params"], a["macs"]) == (b["total_params"], b["macs"])


def test_security_headers_on_every_response(client):
    responses = [
        client.get("/"), client.get("/static/build.js"), client.get("/static/nope.js"), client.get("/api/models"),
        client.post("/api/analyze", json={"source": "6c5w1s0p 2w2q"}), client.get("/api/models", headers={"host": "evil.example"}),
        client.post("/api/analyze", json={"source": "lenet5"}, headers={"origin": "http://evil.example"}),
    ]  # fmt: skip
    assert [r.status_code for r in responses] == [200, 200, 404, 200, 400, 403, 403]
    for r in responses:
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "http" not in csp and "*" not in csp  # nothing from elsewhere
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"


def test_the_static_folder_is_all_that_is_served(client):
    for path in ("/static/../app.py", "/static/%2e%2e/app.py", "/static/..%2fapp.py", "/app.py", "/static/"):
        r = client.get(path)
        assert r.status_code in (400, 404), path
        assert "create_app" not in r.text


def test_analyses_are_cached_and_the_cache_is_bounded():
    from convzoo.serve.app import ResponseCache

    app = create_app(runs_dir=None)
    c = TestClient(app, base_url="http://127.0.0.1:8765")
    first = c.post("/api/analyze", json={"source": "lenet5"})
    again = c.post("/api/analyze", json={"source": "lenet5"})
    assert first.headers["x-convzoo-cache"] == "miss" and again.headers["x-convzoo-cache"] == "hit"
    assert again.json() == first.json() == convzoo.analyze("lenet5").to_dict()
    assert c.post("/api/analyze", json={"source": "6c5w1s0p 2w2q"}).status_code == 400
    assert len(app.state.cache.items) == 1  # errors are not kept

    cache = ResponseCache(entries=3, max_bytes=100)
    for i in range(10):
        cache.put(i, b"x" * 30)
        assert len(cache.items) <= 3 and cache.bytes <= 100
    assert list(cache.items) == [7, 8, 9]
    cache.get(7)
    cache.put(10, b"y" * 30)
    assert list(cache.items) == [9, 7, 10]  # the least recently used went first
    cache.put(11, b"z" * 101)  # larger than the whole cache: not kept
    assert 11 not in cache.items and cache.bytes == 90


def test_kept_networks_answer_as_a_fresh_build_does():
    """The server keeps the networks it built (`BuiltSources`); every later analysis of a
    kept one (another batch, dtype or input) equals the library's analysis of a fresh build."""
    import torch

    from convzoo.analysis.compare import BuiltSources, analyze_source

    app = create_app(runs_dir=None)
    c = TestClient(app, base_url="http://127.0.0.1:8765")
    requests = [
        ("densenet121", None, 1, "float32"), ("densenet121", None, 3, "bfloat16"), ("densenet121", "3x64x64", 2, "float32"),
        ("resnet20(unit=full_preact)", None, 5, "float32"), ("resnet20(unit=full_preact)", None, 1, "float32"),
        (LENET, "1x32x32", 1, "float32"), (LENET, "1x32x32", 7, "bfloat16"),
        ("6c5w1s0p 2w2s 16c5w1s0p 2w2s (Flat) 120fc 84fc 10fc", "1x32x32", 1, "float32"),
        ("6c5w1s0p 2w2s 16c5w1s0p 2w2s (Flat) 120fc 84fc 10fc", "3x36x36", 1, "float32"),  # its flatten: 576, not 400
        ("vgg11", "3x16x16", 1, "float32"),  # fails, and the kept network is still whole after it
        ("vgg11", None, 2, "float32"),
    ]  # fmt: skip
    for source, size, batch, dtype in requests:
        body = {"source": source, "batch_size": batch, "dtype": dtype, **({"input": size} if size else {})}
        got = c.post("/api/analyze", json=body)
        shape = None if size is None else tuple(int(v) for v in size.split("x"))
        if source == "vgg11" and size == "3x16x16":
            assert got.status_code == 400 and "too small" in got.json()["error"]
            continue
        assert got.status_code == 200, got.text
        assert got.json() == analyze_source(source, shape, batch, getattr(torch, dtype)).to_dict(), body
    (kept,) = app.state.kept_networks
    assert len(kept.items) == 6  # a zoo network once whatever its input; a notation one per input
    assert len(kept._prepared) == 6  # and the engine's set-up of each, reused by its updates
    built = BuiltSources(entries=2)
    first = built("lenet5")[0]
    assert built("lenet5", (1, 28, 28))[0] is first and built("lenet5")[1] == (1, 32, 32)
    built("resnet20")
    built("lenet5")
    built("vgg11")
    assert [k[0] for k in built.items] == ["lenet5", "vgg11"]  # the least recently used went first
    kept_lenet = built("lenet5")[0]
    prepared = built.prepared(kept_lenet)
    assert prepared.model is kept_lenet and built.prepared(kept_lenet) is prepared  # made once, then kept
    assert built.prepared(BuiltSources()("lenet5")[0]) is None  # a network it did not build
    built("resnet20")
    built("vgg11")
    assert built.prepared(kept_lenet) is None and id(kept_lenet) not in built._prepared


def test_answers_are_the_json_starlette_writes():
    """The analysis answers are written with orjson where it is installed: the same bytes
    as Starlette's JSONResponse, and the standard library for what orjson refuses."""
    from starlette.responses import JSONResponse

    from convzoo.serve.app import _json_bytes

    answer = convzoo.analyze("densenet121", batch_size=3).to_dict()
    odd = {"big": 2**70, "text": "caf\u00e9 \u2192 x", "nested": [[1, 2], {"k": None}], "flag": True, "x": 0.1}
    for value in (answer, odd, {1: "int key"}):
        assert _json_bytes(value) == JSONResponse(value).body


def test_the_helper_process_gives_the_same_answers_and_is_never_needed():
    """With the helper (what `convzoo serve` runs), each analysis's training pass runs in a
    second process: the answers are the library's, a failing request leaves it in step, and
    when it dies the server analyses alone, with the same answers."""
    import torch

    from convzoo.analysis.compare import analyze_source

    app = create_app(runs_dir=None, helper=True)
    try:
        app.state.warm(freeze=False)
        helper = app.state.helper
        assert helper.wait_ready(120), helper.broken
        helper.worth_s = 0.0  # every kept network goes to the helper (by default only those it speeds up)
        c = TestClient(app, base_url="http://127.0.0.1:8765")
        requests = [("densenet121", None, 2, "float32"), ("vgg11", "3x16x16", 1, "float32"),  # the second fails
                    (LENET, "1x32x32", 3, "bfloat16"), ("resnet18", "3x1x1", 1, "float32"),  # cannot train at 1x1
                    ("resnet20(unit=full_preact)", None, 4, "float32"), ("googlenet", None, 1, "bfloat16")]  # fmt: skip
        for source, size, batch, dtype in requests:
            body = {"source": source, "batch_size": batch, "dtype": dtype, **({"input": size} if size else {})}
            got = c.post("/api/analyze", json=body)
            if source == "vgg11":
                assert got.status_code == 400 and "too small" in got.json()["error"]
                continue
            shape = None if size is None else tuple(int(v) for v in size.split("x"))
            assert got.status_code == 200 and got.json() == analyze_source(source, shape, batch, getattr(torch, dtype)).to_dict()
        assert helper.used == 0 and not helper.broken  # picks are analysed here (the helper builds them after)
        for source, size, batch, dtype in requests[2:]:  # again, now kept: updates
            body = {"source": source, "batch_size": batch + 1, "dtype": dtype, **({"input": size} if size else {})}
            shape = None if size is None else tuple(int(v) for v in size.split("x"))
            assert c.post("/api/analyze", json=body).json() == analyze_source(source, shape, batch + 1, getattr(torch, dtype)).to_dict()
        assert helper.used == 4 and helper.settle()  # updates: with the helper
        number = helper.ask("lenet5", None, 1, "float32")
        assert helper.answer(number, ["not", "these", "rows"]) is None  # another network's rows: not used
        for _ in range(3):  # answers nobody waits for are read off the pipe before the next request
            helper.prefetch("lenet5", None)
        assert helper.settle() and helper._drain() == 0
        for _ in range(3):
            helper.prefetch("lenet5", None)
        import time

        dropped, deadline = 0, time.monotonic() + 30
        while dropped < 3 and time.monotonic() < deadline:
            dropped += helper._drain()
            time.sleep(0.05)
        assert dropped == 3
        assert helper.forget()  # it builds afresh (benchmarks' picks); answers stay the same
        assert c.post("/api/analyze", json={"source": "densenet121", "batch_size": 6}).json() == \
            convzoo.analyze("densenet121", batch_size=6).to_dict()  # fmt: skip
        assert helper.used == 5  # kept here, so an update: the helper built it again itself
        helper.worth_s = 3600.0  # now no network is worth the exchange: analysed here alone
        assert c.post("/api/analyze", json={"source": "densenet121", "batch_size": 7}).json() == \
            convzoo.analyze("densenet121", batch_size=7).to_dict()  # fmt: skip
        assert helper.used == 5
        helper.worth_s = 0.0
        helper.process.kill()
        helper.process.wait()
        got = c.post("/api/analyze", json={"source": "densenet121", "batch_size": 5})
        assert got.json() == convzoo.analyze("densenet121", batch_size=5).to_dict()
        assert "ended" in helper.broken and helper.used == 5
    finally:
        app.state.close()
    assert app.state.helper.process is None


def test_warm_readies_the_first_analysis_and_freezes_what_lives():
    import gc

    app = create_app(runs_dir=None)
    assert gc.get_freeze_count() == 0
    try:
        app.state.warm()
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
    (kept,) = app.state.kept_networks
    assert list(kept.items) == [("lenet5", None)]
    c = TestClient(app, base_url="http://127.0.0.1:8765")
    assert c.post("/api/analyze", json={"source": "lenet5"}).json() == convzoo.analyze("lenet5").to_dict()
