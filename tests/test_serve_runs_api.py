"""The explorer's Runs, Inside and Train routes (serve/runs_api.py) through Starlette's test
client: each route, each refusal (path traversal, symlinks out, missing token, cross-origin,
bad training fields with the CLI's messages, the run lock, uploads) and a real tiny training
started, stopped with SIGINT and resumed."""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")
from starlette.testclient import TestClient  # noqa: E402

from convzoo.serve import create_app  # noqa: E402

BASE = "http://127.0.0.1:8765"


def _fake_run(folder: Path, *, epochs: int = 2, done: int | None = 2, pid: int | None = None,
              model: str = "lenet5") -> Path:  # fmt: skip
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model": model, "data": "fashion-mnist", "epochs": epochs}))
    lines = [{"kind": "step", "epoch": 1, "step": 10, "loss": 1.0, "top1": 60.0, "images_per_second": 100.0},
             {"kind": "epoch", "epoch": 1, "step": 20, "train_loss": 0.9, "train_top1": 70.0, "test_top1": 80.0,
              "test_loss": 0.6}]  # fmt: skip
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    if done is not None:
        (folder / "summary.json").write_text(json.dumps(
            {"model": model, "epochs_done": done, "steps": 40, "test_top1": 85.0, "best_test_top1": 86.0,
             "images_per_second": 123.0}))  # fmt: skip
    if pid is not None:
        (folder / ".lock").write_text(f"pid={pid} host=x since=2026-12-01T00:00:00")
    return folder


@pytest.fixture()
def root(tmp_path):
    runs = tmp_path / "runs"
    _fake_run(runs / "a")
    _fake_run(runs / "busy", done=None, pid=os.getpid())
    exp = runs / "exp" / "degradation-smoke"
    _fake_run(exp / "runs" / "plain20-s0")
    _fake_run(exp / "runs" / "resnet20-s0")
    (exp / "results.json").write_text(json.dumps({
        "experiment": "degradation", "title": "t", "claim": "c", "scale": "smoke", "verdicts": ["deeper plain is worse"],
        "rows": [{"run": "plain20", "test_error": 20.0}, {"run": "resnet20", "test_error": 15.0}],
        "runs": {"plain20": [str(exp / "runs" / "plain20-s0")], "resnet20": [str(exp / "runs" / "resnet20-s0")]}}))  # fmt: skip
    (exp / "report.md").write_text("# report\n")
    outside = _fake_run(tmp_path / "secret")
    (runs / "link").symlink_to(outside)
    return runs


@pytest.fixture()
def client(root):
    return TestClient(create_app(runs_dir=root), base_url=BASE)


def _token(client) -> dict[str, str]:
    return {"X-Convzoo-Token": client.get("/api/session").json()["token"]}


def test_runs_list_one_run_and_metrics_offset(client, root):
    d = client.get("/api/runs").json()
    status = {r["path"]: r["status"] for r in d["runs"]}
    assert status == {"a": "finished", "busy": "running", "exp/degradation-smoke/runs/plain20-s0": "finished",
                      "exp/degradation-smoke/runs/resnet20-s0": "finished"}  # fmt: skip
    assert "secret" not in json.dumps(d)  # the symlink out is not followed
    assert d["training"]["running"] is False
    one = client.get("/api/run", params={"path": "a"}).json()
    assert one["model"] == "lenet5" and one["test_top1"] == 85.0 and len(one["metrics"]["records"]) == 2
    offset = one["metrics"]["offset"]
    with (root / "a" / "metrics.jsonl").open("a") as fh:
        fh.write(json.dumps({"kind": "epoch", "epoch": 2, "step": 40, "test_top1": 85.0}) + "\n")
    more = client.get("/api/run", params={"path": "a", "offset": offset}).json()["metrics"]
    assert [r["epoch"] for r in more["records"]] == [2] and more["offset"] > offset


def test_experiment_output(client):
    e = client.get("/api/experiment", params={"path": "exp/degradation-smoke"}).json()
    assert e["verdicts"] == ["deeper plain is worse"] and [r["run"] for r in e["rows"]] == ["plain20", "resnet20"]
    assert set(e["curves"]) == {"exp/degradation-smoke/runs/plain20-s0", "exp/degradation-smoke/runs/resnet20-s0"}
    assert all(r["kind"] == "epoch" for recs in e["curves"].values() for r in recs)
    assert e["report"].startswith("# report")
    r = client.get("/api/experiment", params={"path": "a"})
    assert r.status_code == 404 and "results.json" in r.json()["error"]


@pytest.mark.parametrize(
    "path,status,needle",
    [("../secret", 400, "'..'"), ("/etc", 400, "relative"), ("a/../../secret", 400, "'..'"), ("link", 400, "outside"),
     ("link/config.json", 400, "outside"), ("nope", 404, "no run"), ("exp", 404, "not a run folder")],
)  # fmt: skip
def test_paths_outside_the_runs_folder_are_refused(client, path, status, needle):
    for route in ("/api/run", "/api/experiment"):
        r = client.get(route, params={"path": path})
        assert r.status_code in (status, 404), (route, r.text)
        assert r.json()["error"]
    r = client.get("/api/run", params={"path": path})
    assert r.status_code == status and needle in r.json()["error"], r.text
    r = client.get("/api/inside/filters", params={"source": f"run:{path}"})
    assert r.status_code == status, r.text


def test_bad_query_values(client):
    assert "offset must be a whole number" in client.get("/api/run", params={"path": "a", "offset": "x"}).json()["error"]
    assert client.get("/api/run", params={"path": "a", "offset": "-1"}).status_code == 400
    assert client.get("/api/run").status_code == 400
    r = client.get("/api/inside/filters", params={"source": "pickle:/tmp/x.pt"})
    assert r.status_code == 400 and "weights:MODEL or run:PATH" in r.json()["error"]
    r = client.get("/api/inside/filters", params={"source": "run:a"})
    assert r.status_code == 404 and "no checkpoint" in r.json()["error"]
    r = client.get("/api/inside/filters", params={"source": "weights:nosuchnet"})
    assert r.status_code == 400 and r.json()["error"]


def test_inside_shipped_lenet5(client, fashion_mnist_dir):
    s = client.get("/api/inside/sources").json()
    assert "weights:lenet5.fashion-mnist" in [w["source"] for w in s["weights"]]
    f = client.get("/api/inside/filters", params={"source": "weights:lenet5"}).json()
    assert f["shape"] == [6, 1, 5, 5] and len(f["filters"]) == 6 and f["classes"][9] == "Ankle boot"
    d = client.get("/api/inside/features", params={"source": "weights:lenet5", "index": 0}).json()
    assert d["label_name"] == "Ankle boot" and d["predictions"][0]["class"] == "Ankle boot" and len(d["predictions"]) == 5
    assert d["stages"][0]["shape"][0] == 6 and sorted(r["index"] for r in d["filters"]["ranked"]) == list(range(6))
    resp = [r["response"] for r in d["filters"]["ranked"]]
    assert resp == sorted(resp, reverse=True)
    by_class = client.get("/api/inside/features", params={"source": "weights:lenet5", "class": "Bag"}).json()
    assert by_class["label_name"] == "Bag" and by_class["index"] >= 0
    for params, needle in (({"index": 10_000}, "index must be in [0, 9999]"), ({"class": "Dog"}, "class must be one of"),
                           ({"index": "x"}, "whole number")):  # fmt: skip
        r = client.get("/api/inside/features", params={"source": "weights:lenet5", **params})
        assert r.status_code == 400 and needle in r.json()["error"], r.text
    c = client.get("/api/inside/confusion", params={"source": "weights:lenet5", "n": 300, "examples": 3}).json()
    assert c["count"] == 300 and sum(map(sum, c["matrix"])) == 300 and len(c["misclassified"]) == 3 and c["top1"] > 80


def _png(size=(28, 28), mode="L") -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new(mode, size, 128).save(buf, format="PNG")
    return buf.getvalue()


def test_upload(client, monkeypatch, tmp_path):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    tok = _token(client)
    url = "/api/inside/upload?source=weights:lenet5"
    r = client.post(url, content=_png((40, 30), "RGB"), headers={**tok, "content-type": "image/png"})
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["uploaded"]["shape"] == [1, 30, 40] and len(d["predictions"]) == 5 and d["label"] is None
    assert client.post(url, content=_png()).status_code == 403  # no token
    r = client.post(url, content=b"not an image at all", headers=tok)
    assert r.status_code == 400 and "not an image" in r.json()["error"]
    r = client.post(url, content=b"", headers=tok)
    assert r.status_code == 400 and "empty" in r.json()["error"]
    r = client.post(url, content=b"\x89PNG" + b"0" * 10_000_001, headers=tok)
    assert r.status_code == 400 and "at most 10,000,000 bytes" in r.json()["error"]
    # a 3 MB upload passes the app's 1 MB body guard and is spooled in the temporary folder only
    from PIL import Image

    buf = io.BytesIO()
    Image.effect_noise((1000, 1000), 64).convert("RGB").save(buf, format="PNG")
    assert len(buf.getvalue()) > 1_000_000
    r = client.post(url, content=buf.getvalue(), headers=tok)
    assert r.status_code == 200, r.text
    assert list((tmp_path / "tmp").iterdir()) == []  # spooled to an anonymous file, gone afterwards


@pytest.mark.parametrize(
    "body,needle",
    [({"model": "nosuchnet", "data": "fashion-mnist"}, "unknown model 'nosuchnet'"),
     ({"model": "lenet5", "data": "fashion-mnist", "epochs": "x"}, "argument --epochs: invalid int value: 'x'"),
     ({"model": "lenet5", "data": "fashion-mnist", "epochs": 0}, "epochs must be a positive integer, got 0"),
     ({"model": "lenet5", "data": "fashion-mnist", "lr": -1}, "lr must be a positive number"),
     ({"model": "lenet5", "data": "fashion-mnist", "amp": "fp8"}, "argument --amp: invalid choice: 'fp8'"),
     ({"model": "lenet5", "data": "nosuchdata"}, "nosuchdata"),
     ({"model": "lenet5", "data": "fashion-mnist", "name": "../x"}, "name must be a folder name"),
     ({"model": "lenet5", "data": "fashion-mnist", "shell": "rm -rf /"}, "unknown field 'shell'"),
     ({"model": "--help", "data": "fashion-mnist"}, "model must be a zoo model name"),
     ({"model": "lenet5", "data": "fashion-mnist", "epochs": [1]}, "epochs must be a number or a string"),
     ({"data": "fashion-mnist"}, "model must be a zoo model name"),
     ({"model": "6c5w1s0p 2w2s 10xx", "data": "fashion-mnist"}, "^"),
     ({"model": "6c5w1s0p 2w2s (Flat) 84fc", "data": "fashion-mnist"}, "the network's output is 84 values"),
     ({"model": "6c5w1s0p 2w2s (Flat)400 10fc", "data": "fashion-mnist", "input_size": 32}, "400"),
     ({"model": "6c5w1s0p 2w2s (Flat) 10fc", "data": "fashion-mnist", "input_size": 0}, "input_size")],
)  # fmt: skip
def test_training_fields_are_validated_like_the_cli(client, body, needle, fashion_mnist_dir):
    r = client.post("/api/train", json=body, headers=_token(client))
    assert r.status_code == 400, r.text
    assert needle in r.json()["error"]


def test_the_cli_gives_the_same_message(tmp_path):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "convzoo", "train", "lenet5", "--data", "fashion-mnist", "--epochs", "0",
                          "--out", str(tmp_path / "x")], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode == 2 and "epochs must be a positive integer, got 0" in out.stderr


def test_state_changes_need_the_token_and_the_same_origin(client):
    body = {"model": "lenet5", "data": "fashion-mnist"}
    for path, payload in (("/api/train", body), ("/api/train/stop", {}), ("/api/train/resume", {"path": "a"})):
        r = client.post(path, json=payload)
        assert r.status_code == 403 and "token" in r.json()["error"]
        r = client.post(path, json=payload, headers={"X-Convzoo-Token": "guess"})
        assert r.status_code == 403
        r = client.post(path, json=payload, headers={**_token(client), "origin": "http://evil.example"})
        assert r.status_code == 403 and "cross-origin" in r.json()["error"]
    assert client.get("/api/session", headers={"host": "evil.example"}).status_code == 403
    other = TestClient(create_app(runs_dir="runs"), base_url=BASE)
    assert other.get("/api/session").json()["token"] != client.get("/api/session").json()["token"]  # per server


def test_the_run_lock_and_existing_runs_are_respected(client):
    tok = _token(client)
    r = client.post("/api/train", json={"model": "lenet5", "data": "fashion-mnist", "name": "busy"}, headers=tok)
    assert r.status_code == 409 and "in use by another convzoo process" in r.json()["error"]
    r = client.post("/api/train/resume", json={"path": "busy"}, headers=tok)
    assert r.status_code == 409 and "in use" in r.json()["error"]
    r = client.post("/api/train", json={"model": "lenet5", "data": "fashion-mnist", "name": "a"}, headers=tok)
    assert r.status_code == 409 and "already holds a run" in r.json()["error"]
    r = client.post("/api/train/resume", json={"path": "../secret"}, headers=tok)
    assert r.status_code == 400
    r = client.post("/api/train/stop", json={}, headers=tok)
    assert r.status_code == 409 and "no training" in r.json()["error"]


def _tiny_fashion(folder: Path, src: str, n_train: int, n_test: int) -> None:
    """Small IDX files (the first images of the real set) under folder/fashion-mnist/."""
    import gzip
    import struct

    out = folder / "fashion-mnist"
    out.mkdir(parents=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        with gzip.open(f"{src}/{split}-images-idx3-ubyte.gz", "rb") as fh:
            fh.read(16)
            pixels = fh.read(n * 784)
        with gzip.open(f"{src}/{split}-labels-idx1-ubyte.gz", "rb") as fh:
            fh.read(8)
            labels = fh.read(n)
        (out / f"{split}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, n, 28, 28) + pixels)
        (out / f"{split}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, n) + labels)


def _wait(client, pred, timeout=240.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        t = client.get("/api/train").json()
        if pred(t):
            return t
        time.sleep(0.3)
    raise AssertionError(f"timed out; last trainer status {t}")


def test_start_stop_resume_a_real_tiny_training(tmp_path, fashion_mnist_dir, monkeypatch):
    _tiny_fashion(tmp_path / "data", fashion_mnist_dir, 400, 100)
    monkeypatch.setenv("CONVZOO_DATA", str(tmp_path / "data"))  # the trainer subprocess inherits it
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    client = TestClient(create_app(runs_dir=tmp_path / "runs"), base_url=BASE)
    tok = _token(client)
    body = {"model": "lenet5", "data": "fashion-mnist", "epochs": 40, "batch_size": 20, "subset": 400, "threads": 1,
            "name": "tiny", "log_every": 2}  # fmt: skip
    started = client.post("/api/train", json=body, headers=tok)
    assert started.status_code == 200, started.text
    argv = started.json()["argv"]
    assert argv[:3] == ["convzoo", "train", "lenet5"] and "--threads=1" in argv and "--quiet" in argv
    again = client.post("/api/train", json={**body, "name": "tiny2"}, headers=tok)
    assert again.status_code == 409 and "one run at a time" in again.json()["error"]
    # the first epoch's record appears in metrics.jsonl
    end = time.monotonic() + 240
    while time.monotonic() < end:
        recs = client.get("/api/run", params={"path": "tiny"}).json()["metrics"]["records"] if (tmp_path / "runs" / "tiny" / "config.json").exists() else []
        if any(r["kind"] == "epoch" for r in recs):
            break
        assert client.get("/api/train").json()["running"], client.get("/api/train").json()["output"]
        time.sleep(0.3)
    assert client.get("/api/run", params={"path": "tiny"}).json()["status"] == "running"
    client.post("/api/train/stop", json={}, headers=tok)
    t = _wait(client, lambda t: not t["running"])
    assert t["returncode"] != 0  # Ctrl-C's exit: checkpointed, interrupted
    run = client.get("/api/run", params={"path": "tiny"}).json()
    assert run["status"] == "interrupted" and "last.pt" in run["checkpoints"]
    steps_before = run["steps"]
    resumed = client.post("/api/train/resume", json={"path": "tiny"}, headers=tok)
    assert resumed.status_code == 200 and "--resume" in resumed.json()["argv"]
    # the resumed run continues from the checkpoint: stop it again after it made progress
    end = time.monotonic() + 240
    while time.monotonic() < end:
        run = client.get("/api/run", params={"path": "tiny"}).json()
        if run["status"] == "running" and run["steps"] > steps_before:
            break
        time.sleep(0.3)
    assert run["steps"] > steps_before
    client.post("/api/train/stop", json={}, headers=tok)
    _wait(client, lambda t: not t["running"])
    assert client.get("/api/runs").json()["runs"][0]["path"] == "tiny"
    # Inside reads the run's last checkpoint (weights_only) and the run's own data
    f = client.get("/api/inside/filters", params={"source": "run:tiny"}).json()
    assert f["shape"] == [6, 1, 5, 5]
    d = client.get("/api/inside/features", params={"source": "run:tiny", "index": 3}).json()
    assert d["index"] == 3 and len(d["predictions"]) == 5
