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
