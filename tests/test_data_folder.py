"""Image folders with unreadable files (issue 15): one line naming the file whatever the number
of workers, and `--verify-data` finding every bad file before the first step."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torchvision.io import encode_png

from convzoo.cli import main
from convzoo.data import load_dataset, make_folder_loader, verify_folder
from convzoo.errors import DataError


def _folder(root: Path, n: int = 4, bad: dict[str, bytes] | None = None) -> Path:
    """`root` with classes a/ and b/ of `n` 12x12 PNGs each, plus the `bad` files (name -> bytes) in a/."""
    g = torch.Generator().manual_seed(0)
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img = torch.randint(0, 256, (3, 12, 12), dtype=torch.uint8, generator=g)
            (root / cls / f"{i}.png").write_bytes(encode_png(img).numpy().tobytes())
    for name, data in (bad or {}).items():
        (root / "a" / name).write_bytes(data)
    return root


def _truncated_png() -> bytes:
    img = torch.randint(0, 256, (3, 12, 12), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    return encode_png(img).numpy().tobytes()[:40]


@pytest.mark.parametrize("workers", [0, 2])
def test_a_corrupt_image_is_one_line_naming_it_with_any_number_of_workers(tmp_path, workers):
    root = _folder(tmp_path / "imgs", bad={"zz_broken.png": b"\x89PNG\r\n\x1a\n garbage"})
    ds = load_dataset(f"folder:{root}", "train")
    loader = make_folder_loader(ds, 3, train=True, input_size=12, workers=workers)
    with pytest.raises(DataError) as info:
        for _ in loader:
            pass
    text = str(info.value)
    assert "zz_broken.png: cannot decode the image" in text
    assert "\n" not in text and "Traceback" not in text and "worker" not in text
    assert "--verify-data" in text  # a training loader offers the check
    test_loader = make_folder_loader(ds, 3, train=False, input_size=12, workers=workers)
    with pytest.raises(DataError, match="zz_broken.png") as info:
        list(test_loader)
    assert "--verify-data" not in str(info.value)


def test_a_good_folder_loads_through_the_guard(tmp_path):
    root = _folder(tmp_path / "imgs")
    loader = make_folder_loader(load_dataset(f"folder:{root}"), 3, train=False, input_size=12, workers=2)
    batches = list(loader)
    assert [tuple(b[0].shape) for b in batches] == [(3, 3, 12, 12)] * 2 + [(2, 3, 12, 12)]
    assert torch.cat([b[1] for b in batches]).tolist() == [0, 0, 0, 0, 1, 1, 1, 1]


@pytest.mark.parametrize("workers", [0, 2])
def test_verify_folder_names_every_bad_file(tmp_path, workers):
    root = _folder(tmp_path / "imgs", bad={"empty.png": b"", "cut.png": _truncated_png(), "text.jpg": b"hello"})
    ds = load_dataset(f"folder:{root}")
    with pytest.raises(DataError) as info:
        verify_folder(ds, workers=workers, batch_size=2)
    text = str(info.value)
    assert text.startswith("3 of 11 files of folder:") and "\n" not in text
    for name in ("empty.png", "cut.png", "text.jpg"):
        assert name in text
    good = _folder(tmp_path / "good")
    assert verify_folder(load_dataset(f"folder:{good}"), workers=workers) == 8


def _train(root: Path, out: Path, *extra: str) -> int:
    return main(["train", "lenet5", "--data", f"folder:{root}", "--input-size", "32", "--epochs", "1",
                 "--batch-size", "4", "--eval-batch-size", "4", "--threads", "1", "--quiet", "--out", str(out),
                 *extra])  # fmt: skip


def test_train_verify_data_refuses_before_the_first_step(tmp_path, capsys):
    root = _folder(tmp_path / "imgs", bad={"broken.png": b"not an image"})
    out = tmp_path / "run"
    assert _train(root, out, "--verify-data", "--workers", "0") == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "broken.png" in err and "1 of 9 files" in err, err
    assert not (out / "metrics.jsonl").exists() or "step" not in (out / "metrics.jsonl").read_text()
    assert not list((out / "checkpoints").glob("*.pt")) if (out / "checkpoints").exists() else True


def test_train_mid_run_corrupt_file_is_one_line_with_workers(tmp_path, capsys):
    root = _folder(tmp_path / "imgs", bad={"broken.png": b"not an image"})
    assert _train(root, tmp_path / "run", "--workers", "2") == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "broken.png: cannot decode the image" in err, err
    assert "Traceback" not in err and "--verify-data" in err


def test_train_verify_data_passes_a_good_folder(tmp_path, capsys):
    root = _folder(tmp_path / "imgs")
    assert _train(root, tmp_path / "run", "--verify-data", "--workers", "0") == 0
    assert "(8 files verified)" in capsys.readouterr().out
