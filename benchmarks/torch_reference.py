"""Single-process PyTorch baseline for DL4J's MLPMnistSingleLayerExample: the peer of benchmarks/speed.py.

It does the work a dist-mnist tutorial run does, and no more: the same recipe (784-1000-10, Xavier
init, Nesterov 0.9, lr 0.006, L2 1e-4 on weights only, batch 128 from a permutation seeded 123
drawn anew each epoch, the last batch short, 15 epochs) and one test-set accuracy each epoch, as
dist-mnist computes on its executors (dist_mnist/driver/loop.py evaluates every epoch's final
parameters on the side). It reads the IDX .gz files itself (about 0.5 s; dist-mnist reads its
ingested Parquet copy).

Its data path is the fastest honest one measured (benchmarks/torch_plain.py, an independent
script of the same recipe, is its cross-check): each epoch gathers the permuted training set once
(X[perm], one copy) and takes each batch as a contiguous slice of it, instead of an index gather
per batch; the epoch's loss is summed as a tensor and read once an epoch, not with loss.item()
every step. The batches, the order and the trained weights are those of a per-batch gather (the
per-batch gather against the epoch gather: 5.22 s against 5.18 s an epoch, 1 thread, load 6 on 2 cores).

OpenMP waits: torch's default (spinning threads), unless OMP_WAIT_POLICY is set in the environment.
Spinning is the faster policy on an idle machine (1.69-2.37 s an epoch against 2.20-2.42 s for
passive waits at load 1.3-1.6, 2 threads) and collapses when other work shares the cores (41 s an
epoch spinning against 3.5-5.3 s passive at load 5-8): run the benchmark on an idle machine. The
policy is not chosen from the load average, which on 2 cores is ~2 after the benchmark's own
previous run. The policy used is in the summary line.

Prints one JSON line per epoch and a final summary line:
{"system": "pytorch", "train_seconds": .., "accuracy": .., "curve": [[t, acc], ...], ...}
where t is wall seconds since this process started running Python (train_curve: since
training started, after imports and data loading). train_seconds excludes evaluation.
"""

import time

T0 = time.perf_counter()  # taken before the slow torch import so the curve counts it

import argparse
import contextlib
import gzip
import json
import os
import struct
import sys
from pathlib import Path

import numpy as np

# The tutorial's hyperparameters; dist-mnist's conf/ holds the same values.
SEED = 123
BATCH_SIZE = 128
LEARNING_RATE = 0.006
MOMENTUM = 0.9
L2 = 1e-4
HIDDEN = 1000
N_IN, N_OUT = 784, 10


def read_idx(path: Path) -> np.ndarray:
    """Read a gzipped IDX file (ubyte only) into a uint8 array of its declared shape."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_split(mnist_dir: Path, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    """Return (X float32 (n, 784) scaled to [0, 1], y int64 (n,)) for 'train' or 't10k'."""
    images = read_idx(mnist_dir / f"{prefix}-images-idx3-ubyte.gz")
    labels = read_idx(mnist_dir / f"{prefix}-labels-idx1-ubyte.gz")
    X = images.reshape(len(images), -1).astype(np.float32) / 255.0  # (n, 784)
    return X, labels.astype(np.int64)


def build_model(torch):
    """784-1000-10 MLP with DL4J's XAVIER init: N(0, 2/(fan_in+fan_out)), zero biases."""
    nn = torch.nn
    model = nn.Sequential(nn.Linear(N_IN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, N_OUT))
    for layer in (model[0], model[2]):
        fan_out, fan_in = layer.weight.shape
        nn.init.normal_(layer.weight, 0.0, (2.0 / (fan_in + fan_out)) ** 0.5)
        nn.init.zeros_(layer.bias)
    return model


def make_optimizer(torch, model, impl: str = "fused"):
    """SGD with Nesterov momentum and L2 on weights only, as the tutorial configures it.

    torch's Nesterov step equals DL4J's Nesterovs updater for a constant learning rate
    (v = mu*v - lr*g; w += (1+mu)*v - mu*v_prev), and weight_decay adds l2*w to the
    gradient before momentum. DL4J >= 1.0.0-beta4 does the same (L2Regularization is
    ApplyStep.BEFORE_UPDATER); DL4J 0.9.x added l2*w after the updater, outside momentum,
    a minor difference at l2=1e-4. Mean loss matches DL4J's minibatch-averaged score.
    """
    weights = [model[0].weight, model[2].weight]
    biases = [model[0].bias, model[2].bias]
    return torch.optim.SGD(
        [{"params": weights, "weight_decay": L2}, {"params": biases, "weight_decay": 0.0}],
        lr=LEARNING_RATE,
        momentum=MOMENTUM,
        nesterov=True,
        **({"fused": True} if impl == "fused" else {"foreach": impl == "foreach"}),
    )


def accuracy(torch, model, X, y) -> float:
    """Test accuracy of the model on (X, y) tensors."""
    with torch.no_grad():
        return float((model(X).argmax(dim=1) == y).float().mean())


def emit(record: dict, sink) -> None:
    """Print a JSON line to stdout and, if given, append it to the sink file."""
    line = json.dumps(record)
    print(line, flush=True)
    if sink is not None:
        sink.write(line + "\n")


def main(argv: list[str] | None = None) -> int:
    """Train for --epochs and print per-epoch JSON lines plus a summary line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--mnist-dir", type=Path, default=Path(os.environ.get("MNIST_DIR", "data/mnist")))
    p.add_argument(
        "--optimizer",
        choices=("fused", "foreach", "loop"),
        default="fused",
        help="torch's SGD implementation: one fused kernel (default), foreach, or the per-parameter loop",
    )
    p.add_argument("--json-out", type=Path, help="also write the JSON lines to this file")
    args = p.parse_args(argv)
    if args.epochs < 1 or args.threads < 1:
        p.error("--epochs and --threads must be >= 1")
    with open(args.json_out, "w") if args.json_out else contextlib.nullcontext() as sink:
        train(args, sink)
    return 0


def train(args: argparse.Namespace, sink) -> None:
    """The epochs, each followed by its test accuracy, then the summary line (all also to sink)."""
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(SEED)
    X_train, y_train = (torch.from_numpy(a) for a in load_split(args.mnist_dir, "train"))
    X_test, y_test = (torch.from_numpy(a) for a in load_split(args.mnist_dir, "t10k"))
    model = build_model(torch)
    opt = make_optimizer(torch, model, args.optimizer)
    loss_fn = torch.nn.CrossEntropyLoss()  # log-softmax + NLL, mean over the batch
    rng = np.random.default_rng(SEED)
    n = len(y_train)

    curve, train_curve, train_seconds = [], [], 0.0
    t_train = time.perf_counter()  # training clock: after imports and data loading
    for epoch in range(1, args.epochs + 1):
        t_start = time.perf_counter()
        order = torch.from_numpy(rng.permutation(n))
        X_epoch, y_epoch = X_train[order], y_train[order]  # one gather an epoch; batches are slices
        loss_sum = torch.zeros(())
        model.train()
        for i in range(0, n, BATCH_SIZE):
            xb, yb = X_epoch[i : i + BATCH_SIZE], y_epoch[i : i + BATCH_SIZE]  # the last is short, as in DL4J
            loss = loss_fn(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.detach() * len(yb)  # read once an epoch, not every step
        loss_sum = float(loss_sum)
        epoch_seconds = time.perf_counter() - t_start
        train_seconds += epoch_seconds
        model.eval()
        acc = accuracy(torch, model, X_test, y_test)
        elapsed = time.perf_counter() - T0
        curve.append([round(elapsed, 3), acc])
        train_curve.append([round(time.perf_counter() - t_train, 3), acc])
        emit(
            {
                "epoch": epoch,
                "train_loss": loss_sum / n,
                "test_accuracy": acc,
                "epoch_seconds": round(epoch_seconds, 3),
                "elapsed_seconds": round(elapsed, 3),
            },
            sink,
        )

    emit(
        {
            "system": "pytorch",
            "threads": args.threads,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
            "optimizer": args.optimizer,
            "epochs": args.epochs,
            "train_rows": n,
            "train_seconds": round(train_seconds, 3),
            "accuracy": curve[-1][1],
            "wall_seconds": round(time.perf_counter() - T0, 3),
            "curve": curve,
            "train_curve": train_curve,
        },
        sink,
    )


if __name__ == "__main__":
    sys.exit(main())
