"""Wall and CPU time of `convzoo.evaluate.evaluate` under each test protocol, and its results.

    OMP_NUM_THREADS=1 python benchmarks/eval_speed.py [--images 500] [--batch-size 100] [--repeat 3]

LeNet-5 with its shipped Fashion-MNIST weights on the first N Fashion-MNIST test images at
its 32x32 input, under: 1 crop; 1 crop + flip; 10 crops (the small images' training-canvas
views); dense + flip; multi-scale (32, 36, 40) x 10 crops; multi-scale x (10 crops +
dense). Prints one JSON object: per protocol the best of `--repeat` wall and CPU times
(seconds; the CPU time is the steadier figure on a loaded machine) and the result's top1,
loss and views, so two trees can be compared for speed and for identical numbers (run it
with PYTHONPATH=OTHER/src).
"""

from __future__ import annotations

import argparse
import json
import time

PROTOCOLS = {
    "1 crop": {},
    "1 crop + flip": {"flip": True},
    "10 crops": {"crops": 10},
    "dense + flip": {"dense": True, "flip": True},
    "multi-scale x 10 crops": {"crops": 10, "scales": [32, 36, 40]},
    "multi-scale x (10 crops + dense)": {"crops": 10, "dense": True, "scales": [32, 36, 40]},
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=500)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()

    import torch

    import convzoo
    from convzoo.data import load_dataset, make_augment
    from convzoo.evaluate import evaluate

    torch.set_num_threads(1)
    model = convzoo.create_model("lenet5", weights="fashion-mnist")
    test = load_dataset("fashion-mnist", "test").subset(args.images)
    aug = make_augment("fashion-mnist", 32, recipe="standard", train=False, channels=1)
    train_aug = make_augment("fashion-mnist", 32, recipe="standard", train=True, channels=1)
    out: dict[str, object] = {"torch": torch.__version__, "convzoo": convzoo.__file__, "images": args.images,
                              "batch_size": args.batch_size, "protocols": {}}  # fmt: skip
    for name, kw in PROTOCOLS.items():
        best = best_cpu = float("inf")
        res: dict = {}
        for _ in range(args.repeat):
            t0, c0 = time.perf_counter(), time.process_time()
            res = evaluate(model, test, batch_size=args.batch_size, input_size=32, augment=aug,
                           train_augment=train_aug, **kw)  # fmt: skip
            best = min(best, time.perf_counter() - t0)
            best_cpu = min(best_cpu, time.process_time() - c0)
        out["protocols"][name] = {"seconds": round(best, 4), "cpu_seconds": round(best_cpu, 4),  # type: ignore[index]
                                  "top1": res["top1"], "loss": res["loss"], "views": res["views"],
                                  "protocol": res["protocol"]}  # fmt: skip
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
