"""The GEMM kernels under the speed comparison: NumPy's BLAS against the PyTorch wheel's, same shapes, same threads;
and layer 0's two products on real MNIST batches: dense, on the active columns, and from the non-zeros.

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


def layer0_batches(data: str, n: int, seed: int = 0) -> list[np.ndarray]:
    """n minibatches of 128 real MNIST training images, as the trainer feeds them (float32 / 255)."""
    from dist_mnist.data.parquet import read_files
    from dist_mnist.data.splits import describe_split
    from dist_mnist.nn.model import to_inputs

    images, _ = read_files(list(describe_split(f"{data}/train").files))
    order = np.random.default_rng(seed).permutation(len(images))
    return [to_inputs(images[order[i * 128 : (i + 1) * 128]]) for i in range(n)]


def layer0(data: str, reps: int) -> dict:
    """Median ms a batch of layer 0's two products (X @ W0 and X^T @ dH) at the tutorial's shapes
    on real MNIST batches, one thread: NumPy's dense GEMM, NumPy on the batch's active columns
    (the dense path), torch's dense GEMM, and the sparse kernels (nn/sparse.py), interleaved."""
    from dist_mnist.nn import sparse

    batches = layer0_batches(data, 16)
    rng = np.random.default_rng(1)
    W0 = (rng.standard_normal((784, 1000)) * 0.04).astype(np.float32)
    dH = rng.standard_normal((128, 1000)).astype(np.float32)
    tW0, tdH = torch.from_numpy(W0), torch.from_numpy(dH)

    def active(X):
        cols = np.flatnonzero(X.any(axis=0))
        return X[:, cols] @ W0[cols], X[:, cols].T @ dH

    def sparse_both(X):
        rows = sparse.sparse_rows(X)
        return sparse.forward(rows, W0), sparse.weight_grad(rows, dH, 784)

    ways = {
        "numpy_dense": lambda X: (X @ W0, X.T @ dH),
        "numpy_active_columns": active,
        "torch_dense": lambda X: (torch.from_numpy(X) @ tW0, torch.from_numpy(X).T @ tdH),
        "sparse": sparse_both,
    }
    got = {name: [] for name in ways}
    torch.set_num_threads(1)
    with threadpool_limits(1, user_api="blas"):
        for way in ways.values():
            way(batches[0])  # compiled, warmed
        for _ in range(reps):
            for name, way in ways.items():
                t0 = time.perf_counter()
                for X in batches:
                    way(X)
                got[name].append((time.perf_counter() - t0) / len(batches) * 1e3)
    density = float(np.mean([np.count_nonzero(X) / X.size for X in batches]))
    ms = {name: round(statistics.median(times), 3) for name, times in got.items()}
    return {"batch": 128, "non_zero": round(density, 4), "ms_per_batch": ms}


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
    p.add_argument("--data", default="data/mnist", help="MNIST ingested by dist-mnist ingest (DATA), for layer 0")
    p.add_argument("--reps", type=int, default=15, help="layer 0: interleaved repetitions of 16 batches")
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
        "layer0_threads_1": layer0(args.data, args.reps),
        "loadavg_after": list(os.getloadavg()),
    }
    path = Path(args.out) / "kernels.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, doc)
    print(json.dumps({k: doc[k] for k in ("gflops", "torch_step_ms_threads_2", "layer0_threads_1")}))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
