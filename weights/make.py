"""Train, measure and write convzoo's shipped weights: `python weights/make.py NAME [NAME ...]`.

For each NAME, the recipe `src/convzoo/weights/recipes/NAME.toml` is trained by the real
trainer (`python -m convzoo train --config RECIPE --out weights/runs/NAME`, a subprocess,
so it is exactly what a user runs; an interrupted run is resumed, a finished one reused).
The final checkpoint (`last.pt`: the end of the schedule, never a test-selected "best")
is then evaluated on the test set by `convzoo.weights.measure.evaluate_weights` (deterministic,
fp32), and its state dict written with safetensors to
`src/convzoo/weights/NAME.TAG.safetensors` beside `NAME.TAG.json`, the metadata: every
number in it was measured here, nothing is typed in by hand.

  python weights/make.py lenet5 resnet20          # train (or resume) and write
  python weights/make.py lenet5 --threads 1       # torch threads of the training run
  python weights/make.py --list                   # the recipes
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from convzoo.weights import RECIPES_DIR, WEIGHTS_DIR, sha256_of  # noqa: E402
from convzoo.weights.measure import evaluate_weights  # noqa: E402

TAGS = {"fashion-mnist": "fashion-mnist"}


def recipe_names() -> list[str]:
    return sorted(p.stem for p in RECIPES_DIR.glob("*.toml"))


def train(name: str, recipe: Path, run_dir: Path, threads: int | None) -> None:
    """Run (or resume, or reuse) the recipe's training in `run_dir`."""
    summary = run_dir / "summary.json"
    with recipe.open("rb") as fh:
        epochs = tomllib.load(fh)["epochs"]
    if summary.is_file() and json.loads(summary.read_text()).get("epochs_done") == epochs:
        print(f"{name}: {run_dir} holds the finished run; evaluating it", flush=True)
        return
    cmd = [sys.executable, "-m", "convzoo", "train", "--config", str(recipe), "--out", str(run_dir), "--quiet"]
    if threads:
        cmd += ["--threads", str(threads)]
    if (run_dir / "checkpoints").is_dir():
        cmd += ["--resume"]
    print(f"{name}: {' '.join(cmd)}", flush=True)
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    subprocess.run(cmd, check=True, env=env, cwd=ROOT)


def write(name: str, recipe: Path, run_dir: Path) -> Path:
    import torch

    import convzoo
    from convzoo.train.checkpoint import load_checkpoint

    model, ckpt = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    summary = json.loads((run_dir / "summary.json").read_text())
    config = ckpt.get("config") or {}
    dataset = config["data"]
    tag = TAGS[dataset]
    from convzoo import data as zdata

    info = zdata.dataset_info(dataset)
    size = int(ckpt.get("input_size") or summary["input_size"])
    channels = int(ckpt.get("in_channels") or info["channels"])
    kwargs = {k: v for k, v in dict(ckpt.get("model_kwargs") or {}).items() if k not in ("num_classes", "in_channels")}
    meta = {
        "model": name,
        "tag": tag,
        "dataset": dataset,
        "classes": list(ckpt.get("classes") or info.get("classes") or []),
        "num_classes": int(dict(ckpt.get("model_kwargs") or {}).get("num_classes") or info["num_classes"]),
        "in_channels": channels,
        "model_kwargs": kwargs,
        "input_size": [channels, size, size],
        "mean": list(info["mean"]),
        "std": list(info["std"]),
        "test_transform": {"recipe": "none", "resize": [int(info["size"]), size],
                           "text": f"bilinear resize {info['size']}->{size} (none when equal), "
                                   "then (x/255 - mean) / std"},
    }  # fmt: skip
    model = model.float().to(memory_format=torch.contiguous_format).eval()
    model.weights_meta = meta
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    result = evaluate_weights(model, meta)
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    from safetensors.torch import save_file

    WEIGHTS_DIR.mkdir(parents=True, exist_ok=True)
    out = WEIGHTS_DIR / f"{name}.{tag}.safetensors"
    tmp = out.with_suffix(".tmp")
    save_file(state, str(tmp), metadata={"model": name, "tag": tag, "format": "pt"})
    os.chmod(tmp, 0o644)
    os.replace(tmp, out)
    meta.update({
        "test_top1": round(float(result["top1"]), 4),
        "test_top5": round(float(result["top5"]), 4),
        "test_images": int(result["count"]),
        "trainer_test_top1": summary.get("test_top1"),
        "params": sum(int(v.numel()) for k, v in model.named_parameters()),
        "file": out.name,
        "file_bytes": out.stat().st_size,
        "sha256": sha256_of(out),
        "command": f"python weights/make.py {name}",
        "recipe": f"src/convzoo/weights/recipes/{recipe.name}",
        "train_command": f"convzoo train --config src/convzoo/weights/recipes/{recipe.name}",
        "epochs": summary.get("epochs_done"),
        "steps": summary.get("steps"),
        "images_per_second": round(float(summary.get("images_per_second") or 0), 1),
        "wall_seconds": round(float(summary.get("wall_seconds") or 0), 1),
        "train_seconds": round(float(summary.get("train_seconds") or 0), 1),
        "seed": config.get("seed"),
        "convzoo_version": convzoo.__version__,
        "torch_version": torch.__version__,
        "hardware": summary.get("hardware"),
        "versions": summary.get("versions"),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%MZ"),
    })  # fmt: skip
    (WEIGHTS_DIR / f"{name}.{tag}.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"{name}.{tag}: test top-1 {meta['test_top1']:.2f}%, top-5 {meta['test_top5']:.2f}% "
          f"(trainer's last evaluation {summary.get('test_top1')}); {meta['file_bytes']:,} bytes -> {out}")  # fmt: skip
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", metavar="NAME", help="recipe names (default: all)")
    p.add_argument("--threads", type=int, default=None, help="torch threads of the training run")
    p.add_argument("--runs", default=str(ROOT / "weights" / "runs"), help="where the run folders go")
    p.add_argument("--list", action="store_true", help="list the recipes and exit")
    p.add_argument("--no-train", action="store_true", help="only evaluate and write finished runs")
    args = p.parse_args()
    if args.list:
        print("\n".join(recipe_names()))
        return 0
    names = args.names or recipe_names()
    unknown = [n for n in names if n not in recipe_names()]
    if unknown:
        print(f"make.py: error: no recipe for {', '.join(unknown)}; recipes: {', '.join(recipe_names())}", file=sys.stderr)
        return 2
    for name in names:
        recipe = RECIPES_DIR / f"{name}.toml"
        run_dir = Path(args.runs) / name
        if not args.no_train:
            train(name, recipe, run_dir, args.threads)
        write(name, recipe, run_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
