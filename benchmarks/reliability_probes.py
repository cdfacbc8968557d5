"""Reliability probes (issue 15), with the figures docs/reliability.md quotes.

  python benchmarks/reliability_probes.py --flips 200 --fuzz 20000 [--kills 10]

- bit flips: single random bit flips in a real LeNet-5 checkpoint; each must be refused
  (`CheckpointError`) or load every tensor unchanged ("clean"); a changed tensor is a failure.
- gzip bomb: a ~2 MB .gz IDX file holding 2 GiB of zeros behind a 47 MB header; the peak
  memory growth of the refusal is reported.
- notation fuzz: random mutations (insert, delete, duplicate, replace characters, huge
  numbers) of valid specs; each line must parse or raise `ConvzooError`, anything else fails.
- kills: SIGKILL a deterministic training run at random moments, resume each time, compare
  the final weights with an uninterrupted run (bit for bit).
"""

from __future__ import annotations

import argparse
import random
import resource
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def bit_flips(n: int, seed: int) -> str:
    import torch

    from convzoo.errors import CheckpointError
    from convzoo.registry import create_model
    from convzoo.train.checkpoint import atomic_save, read_checkpoint

    torch.manual_seed(0)
    model = create_model("lenet5", num_classes=10, in_channels=1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, 1, 32, 32)).sum().backward()
    opt.step()
    payload = {"model_name": "lenet5", "model_kwargs": {"num_classes": 10, "in_channels": 1},
               "model": model.state_dict(), "optimizer": opt.state_dict(), "step": 1, "epoch": 0}  # fmt: skip
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "c.pt"
        atomic_save(payload, path)
        good = path.read_bytes()
        ref = read_checkpoint(path)
        rng = random.Random(seed)
        refused = unchanged = changed = 0
        for _ in range(n):
            bit = rng.randrange(len(good) * 8)
            bad = bytearray(good)
            bad[bit // 8] ^= 1 << (bit % 8)
            path.write_bytes(bytes(bad))
            try:
                ck = read_checkpoint(path)
            except CheckpointError:
                refused += 1
                continue
            same = all(torch.equal(ck["model"][k], ref["model"][k]) for k in ref["model"])
            unchanged += same
            changed += not same
    return (f"bit flips: {n} tried, {refused + unchanged} clean ({refused} refused with a message, {unchanged} "
            f"loaded unchanged), {changed} loaded a changed tensor; checkpoint of {len(good):,} bytes")


def gzip_bomb() -> str:
    from convzoo.data.readers import IDX_IMAGES_MAGIC, read_idx
    from convzoo.errors import DataError

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "train-images-idx3-ubyte.gz"
        c = zlib.compressobj(9, zlib.DEFLATED, 31)
        with open(path, "wb") as fh:
            fh.write(c.compress(struct.pack(">IIII", 2051, 60000, 28, 28)))
            zeros = bytes(1 << 20)
            for _ in range(2048):
                fh.write(c.compress(zeros))
            fh.write(c.flush())
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        try:
            read_idx(path, IDX_IMAGES_MAGIC)
            verdict = "NOT refused"
        except DataError:
            verdict = "refused"
        seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        size = path.stat().st_size
    return (f"gzip bomb: {size / 1e6:.2f} MB file inflating to 2,147 MB, header announcing 47 MB: {verdict} in "
            f"{seconds:.2f} s, peak memory growth {(peak - before) / 1024:.0f} MiB")


SEEDS = [
    "Input->(Conv)6c5w1s0p->(MaxPool)2w2s->(Conv)16c5w1s0p->(MaxPool)2w2s->(Flat)400->120fc->84fc->10fc->(Output)",
    "Input->(Conv)64c3w1s1p+bn*2->(MaxPool)2w2s->(Conv)128c3w1s1p+bn->(AvgPool)2w2s->(Dropout)0.5->10fc->(Output)",
    "Input->(Conv)96c11w4s0p->(LRN)->(MaxPool)3w2s->(Flat)->4096fc->(Dropout)0.5->1000fc->(Output)",
]
_ALPHABET = "()->*+.0123456789cwspfgxbnreluInputOutputConvMaxPoolFlat \t\n"


def _mutate(text: str, rng: random.Random) -> str:
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(text) + 1)
        op = rng.randrange(5)
        if op == 0:
            text = text[:i] + rng.choice(_ALPHABET) + text[i:]
        elif op == 1 and text:
            text = text[:i] + text[i + 1 :]
        elif op == 2:
            j = rng.randrange(len(text) + 1)
            text = text[:i] + text[min(i, j) : max(i, j)] + text[i:]
        elif op == 3:
            text = text[:i] + "9" * rng.choice((5, 50, 5000)) + text[i:]
        else:
            text = text[:i] + chr(rng.randrange(32, 0x3000)) + text[i + 1 :]
    return text


def notation_fuzz(n: int, seed: int) -> str:
    from convzoo import from_spec
    from convzoo.errors import ConvzooError

    rng = random.Random(seed)
    clean = 0
    failures: list[str] = []
    for _ in range(n):
        text = _mutate(rng.choice(SEEDS), rng)
        try:
            from_spec(text, input_size=(3, 64, 64))
            clean += 1
        except ConvzooError as err:
            clean += len(str(err)) < 2000
            if len(str(err)) >= 2000:
                failures.append(f"long message for {text[:80]!r}")
        except Exception as err:  # noqa: BLE001 - the probe counts these
            failures.append(f"{type(err).__name__} for {text[:80]!r}")
    extra = f"; first: {failures[0]}" if failures else ""
    return f"notation fuzz: {n} tried, {clean} clean{extra}"


def kills(n: int, seed: int) -> str:
    import torch

    from convzoo.train.checkpoint import read_checkpoint
    from test_train import write_fake_fashion_mnist

    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as d:
        data = write_fake_fashion_mnist(Path(d) / "fm", n_train=384, n_test=128)

        def cmd(out: Path, *extra: str) -> list[str]:
            return [sys.executable, "-m", "convzoo", "train", "lenet5", "--data", "fashion-mnist", "--data-dir",
                    str(data), "--epochs", "2", "--batch-size", "16", "--augment", "none", "--threads", "1",
                    "--deterministic", "--checkpoint-every", "2", "--seed", "5", "--quiet", "--out", str(out), *extra]

        ref, run = Path(d) / "ref", Path(d) / "run"
        subprocess.run(cmd(ref), check=True, capture_output=True)
        want = read_checkpoint(ref / "checkpoints" / "last.pt")["model"]

        def identical() -> bool:
            got = read_checkpoint(run / "checkpoints" / "last.pt")["model"]
            return all(torch.equal(want[k], got[k]) for k in want)

        tried = clean = pending = 0  # pending: kills of the current run, judged when it finishes
        while tried < n:
            started = list((run / "checkpoints").glob("step-*.pt")) if (run / "checkpoints").is_dir() else []
            before = {p.name for p in started}
            proc = subprocess.Popen(cmd(run, "--resume" if started else "--overwrite"),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
            while proc.poll() is None and not ({p.name for p in (run / "checkpoints").glob("step-*.pt")} - before):
                time.sleep(0.01)
            time.sleep(rng.uniform(0, 0.5))
            if proc.poll() is not None:  # the run finished between kills: judge its kills, start afresh
                clean += pending if proc.returncode == 0 and identical() else 0
                pending = 0
                subprocess.run(["rm", "-rf", str(run)])
                continue
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            tried += 1
            pending += 1
            print(f"  kill {tried}/{n}", file=sys.stderr, flush=True)
        if pending:
            subprocess.run(cmd(run, "--resume"), check=True, capture_output=True)
            clean += pending if identical() else 0
    return (f"kills: {tried} tried, {clean} clean (SIGKILL at random moments, resumed each time, final weights "
            "bit-identical to an uninterrupted run)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--flips", type=int, default=200)
    ap.add_argument("--fuzz", type=int, default=20000)
    ap.add_argument("--kills", type=int, default=0)
    ap.add_argument("--seed", type=int, default=15)
    a = ap.parse_args()
    print(bit_flips(a.flips, a.seed), flush=True)
    print(gzip_bomb(), flush=True)
    print(notation_fuzz(a.fuzz, a.seed), flush=True)
    if a.kills:
        print(kills(a.kills, a.seed), flush=True)


if __name__ == "__main__":
    main()
