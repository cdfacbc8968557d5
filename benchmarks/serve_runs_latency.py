"""Server time of the explorer's Runs and Inside routes (issue 12), in-process through
Starlette's test client (no network; the figure is the app's handling time plus the
client's small overhead):

- feature maps + top-5 + filter ranking of one test image through the shipped resnet20
  (`GET /api/inside/features`), goal <= 300 ms;
- the filters page (`GET /api/inside/filters`), goal <= 200 ms;
- the runs list with 100 run folders (`GET /api/runs`), goal <= 500 ms.

Each is timed `--repeat` times after one warm-up call (the warm-up loads the weights and
the test set; its time is printed too); p50 and p95 are printed, with --json as JSON.

  OMP_NUM_THREADS=1 python benchmarks/serve_runs_latency.py [--repeat 20] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def _fake_runs(root: Path, n: int, records: int) -> None:
    """`n` run folders like the trainer's: config.json, a metrics.jsonl of `records` lines, summary.json."""
    for i in range(n):
        f = root / f"lenet5-fashion-mnist-{i:03d}"
        f.mkdir(parents=True)
        (f / "config.json").write_text(json.dumps({"model": "lenet5", "data": "fashion-mnist", "epochs": 8, "lr": 0.1}))
        lines = []
        for s in range(records):
            lines.append(json.dumps({"kind": "step", "epoch": 1 + s // 100, "step": s, "loss": 1.0 / (s + 1), "top1": 50.0,
                                     "lr": 0.1, "images_per_second": 4000.0, "time": float(s)}))  # fmt: skip
            if s % 100 == 99:
                lines.append(json.dumps({"kind": "epoch", "epoch": 1 + s // 100, "step": s, "test_top1": 90.0}))
        (f / "metrics.jsonl").write_text("\n".join(lines) + "\n")
        (f / "summary.json").write_text(json.dumps({"model": "lenet5", "epochs_done": 8, "steps": records,
                                                    "test_top1": 90.0, "best_test_top1": 90.5,
                                                    "images_per_second": 4000.0}))  # fmt: skip


def _time(client, url: str, repeat: int) -> dict[str, float]:
    t0 = time.perf_counter()
    r = client.get(url)
    first = time.perf_counter() - t0
    assert r.status_code == 200, r.text
    times, cpu = [], []
    for i in range(repeat):
        u = url.replace("index=0", f"index={i}")
        t0, c0 = time.perf_counter(), time.process_time()
        r = client.get(u)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        assert r.status_code == 200, r.text
    times.sort()
    return {"first_ms": 1000 * first, "p50_ms": 1000 * statistics.median(times),
            "p95_ms": 1000 * times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))], "n": repeat,
            "cpu_p50_ms": 1000 * statistics.median(cpu)}  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--runs", type=int, default=100, help="run folders in the runs list (default 100)")
    p.add_argument("--records", type=int, default=1000, help="metrics.jsonl lines per run folder")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    import torch
    from starlette.testclient import TestClient

    from convzoo.serve import create_app

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "0")) or torch.get_num_threads())
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        _fake_runs(Path(tmp), args.runs, args.records)
        client = TestClient(create_app(runs_dir=tmp), base_url="http://127.0.0.1:8765")
        results["features resnet20 (one image)"] = _time(client, "/api/inside/features?source=weights:resnet20&index=0", args.repeat)
        results["filters resnet20"] = _time(client, "/api/inside/filters?source=weights:resnet20", args.repeat)
        results["filters lenet5"] = _time(client, "/api/inside/filters?source=weights:lenet5", args.repeat)
        results[f"runs list ({args.runs} run folders)"] = _time(client, "/api/runs", args.repeat)
    goals = {"features resnet20 (one image)": 300, "filters resnet20": 200, "filters lenet5": 200}
    if args.json:
        print(json.dumps({"threads": torch.get_num_threads(), "load": os.getloadavg(), "results": results}, indent=2))
        return 0
    print(f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}, {args.repeat} timed calls each")
    print("wall = time seen by the client; cpu = this process's CPU time per call (what the call costs on an idle core)")
    print(f"{'route':36s} {'first':>9s} {'p50':>9s} {'p95':>9s} {'cpu p50':>9s} {'goal':>7s}")
    for k, v in results.items():
        goal = goals.get(k, 500)
        print(f"{k:36s} {v['first_ms']:8.0f}ms {v['p50_ms']:8.1f}ms {v['p95_ms']:8.1f}ms {v['cpu_p50_ms']:8.1f}ms {goal:6d}ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
