"""The GEMM kernels under the speed comparison: NumPy's BLAS against the PyTorch wheel's, same shapes, same threads.

It also times a whole PyTorch training step with torch's three SGD implementations (the peer
uses the fastest; torch's default on CPU is the per-parameter loop).

dist-mnist's steps run on NumPy's BLAS (OpenBLAS in the numpy wheel); the PyTorch peer's on the
torch wheel's (MKL on x86). Their speed at the tutorial's shapes differs by CPU vendor, and it
decides much of the whole-process ratio in benchmarks/speed.py, so this script measures both in
one process, alternating, and names the libraries and the CPU. Writes OUT/kernels.json.

    python benchmarks/kernels.py --out benchmarks/results
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_info, threadpool_limits

from dist_mnist.files.atomic import atomic_write_json

# Layer 0 of 784-1000-10 at batch 128, the two products that are most of a step's flops
SHAPES = {"forward 128x784 @ 784x1000": ((128, 784), (784, 1000)), "dW0 784x128 @ 128x1000": ((784, 128), (128, 1000))}


def best_rate(matmul, flops: int, seconds: float) -> float:
    """Best of 5 trials of about seconds/5 each, in GFLOP/s."""
    for _ in range(5):
        matmul()
    best = 0.0
    for _ in range(5):
        n, t0 = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - t0) < seconds / 5:
            matmul()
            n += 1
        best = max(best, n * flops / elapsed / 1e9)
    return round(best, 1)


def measure(threads: int, seconds: float) -> dict:
    """{shape: {"numpy": GFLOP/s, "torch": GFLOP/s}} with both libraries at `threads` threads."""
    rng = np.random.default_rng(0)
    out = {}
    torch.set_num_threads(threads)
    with threadpool_limits(threads, user_api="blas"):
        for name, (a_shape, b_shape) in SHAPES.items():
            A, B = rng.random(a_shape, dtype=np.float32), rng.random(b_shape, dtype=np.float32)
            C = np.empty((a_shape[0], b_shape[1]), np.float32)
            tA, tB, tC = torch.from_numpy(A), torch.from_numpy(B), torch.from_numpy(C.copy())
            flops = 2 * a_shape[0] * a_shape[1] * b_shape[1]
            out[name] = {
                "numpy": best_rate(lambda A=A, B=B, C=C: np.matmul(A, B, out=C), flops, seconds),
                "torch": best_rate(lambda a=tA, b=tB, c=tC: torch.mm(a, b, out=c), flops, seconds),
            }
    return out


def optimizer_steps(threads: int, steps: int, reps: int) -> dict:
    """Median ms of one training step (forward, backward, SGD step) on batch 128 with torch's three
    SGD implementations (per-parameter loop, foreach, fused), interleaved rep by rep."""
    from torch import nn

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    X, y = torch.rand(steps * 128, 784), torch.randint(0, 10, (steps * 128,))
    loss_fn, runs = nn.CrossEntropyLoss(), {}
    for impl in ("loop", "foreach", "fused"):
        model = nn.Sequential(nn.Linear(784, 1000), nn.ReLU(), nn.Linear(1000, 10))
        flag = {"fused": True} if impl == "fused" else {"foreach": impl == "foreach"}
        opt = torch.optim.SGD(model.parameters(), lr=0.006, momentum=0.9, nesterov=True, weight_decay=1e-4, **flag)
        runs[impl] = (model, opt, [])
    for _ in range(reps):
        for model, opt, times in runs.values():
            t0 = time.perf_counter()
            for i in range(0, steps * 128, 128):
                opt.zero_grad(set_to_none=True)
                loss_fn(model(X[i : i + 128]), y[i : i + 128]).backward()
                opt.step()
            times.append((time.perf_counter() - t0) / steps * 1e3)
    return {impl: round(statistics.median(times), 3) for impl, (_, _, times) in runs.items()}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    p.add_argument("--seconds", type=float, default=2.0, help="per shape, library and thread count")
    args = p.parse_args()
    blas = [
        {k: i.get(k) for k in ("internal_api", "version", "architecture")}
        for i in threadpool_info()
        if i.get("user_api") == "blas"
    ]
    torch_blas = [
        line.strip()
        for line in torch.__config__.show().splitlines()
        if "BLAS_INFO" in line or "Math Kernel Library" in line or "oneDNN" in line
    ]
    doc = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{os.cpu_count()} cores",
        "cpu": cpu_model(),
        "command": "python benchmarks/kernels.py",
        "loadavg_before": list(os.getloadavg()),
        "numpy": {"version": np.__version__, "blas": blas},
        "torch": {"version": torch.__version__, "blas": torch_blas},
        "gflops": {f"threads_{t}": measure(t, args.seconds) for t in (1, 2)},
        "torch_step_ms_threads_2": optimizer_steps(2, steps=200, reps=5),
        "loadavg_after": list(os.getloadavg()),
    }
    path = Path(args.out) / "kernels.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, doc)
    print(json.dumps({k: doc[k] for k in ("gflops", "torch_step_ms_threads_2")}))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
