"""convzoo eval names the checkpoint and step it evaluates, shows progress, takes --threads."""

from __future__ import annotations

import json

import pytest

from convzoo.cli import main


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, fashion_mnist_dir):
    from convzoo.train import TrainConfig, train

    out = tmp_path_factory.mktemp("evalrun") / "run"
    cfg = TrainConfig(model="lenet5", data="fashion-mnist", data_dir=fashion_mnist_dir, epochs=1, batch_size=64,
                      subset=256, augment="none", threads=1, out=str(out))  # fmt: skip
    return train(cfg, progress=False)


def test_eval_names_checkpoint_and_step_and_shows_progress(tiny_run, capsys):
    assert main(["eval", str(tiny_run), "--threads", "1", "--subset", "100", "--flip", "--json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["step"] == 4 and result["epoch"] == 1 and result["count"] == 100
    assert result["checkpoint_file"].endswith("checkpoints/last.pt (= step-00000004.pt)")
    err = captured.err
    assert f"evaluating {tiny_run}/checkpoints/last.pt (= step-00000004.pt): lenet5 at step 4 (epoch 1)" in err
    assert "raw weights, on fashion-mnist test (100 images x 2 views)" in err
    # off a terminal: plain progress lines, the last one complete
    assert "eval 200/200 images (100%)" in err.splitlines()[-1]


def test_eval_quiet_and_a_step_file(tiny_run, capsys):
    step_file = tiny_run / "checkpoints" / "step-00000004.pt"
    assert main(["eval", str(step_file), "--subset", "50", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and "top-1" in captured.out


@pytest.mark.parametrize("threads, needle", [("0", "--threads must be a positive"), ("999", "more than this machine")])
def test_eval_bad_threads(tiny_run, threads, needle, capsys):
    assert main(["eval", str(tiny_run), "--threads", threads]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_eval_threads_are_applied(tiny_run, capsys):
    import torch

    before = torch.get_num_threads()
    try:
        assert main(["eval", str(tiny_run), "--threads", "1", "--subset", "10", "--quiet"]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_eval_progress_counts_the_real_views(tiny_run, capsys):
    # trained without augmentation on images no larger than the input: 10-crop is one view
    assert main(["eval", str(tiny_run), "--crops", "10", "--subset", "40", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["views"] == 1
    assert "(40 images)" in captured.err and "eval 40/40 images (100%)" in captured.err
