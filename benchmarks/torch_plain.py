"""The tutorial's recipe as a PyTorch user writes it first: a cross-check of benchmarks/torch_reference.py.

An outside review found the PyTorch peer slower than an independent script of the same recipe, so
benchmarks/speed.py can run this one beside it in every pair. It is the loop PyTorch's own examples
write: torch.randperm each epoch and an index gather per batch, weight decay on every parameter
(biases too, a small difference from the tutorial's weights-only L2), xavier_normal_ init, the loss
read with .item() every step, and one test-set accuracy at the end only. Same model, batch 128,
Nesterov 0.9, lr 0.006, L2 1e-4, 15 epochs, seed 123, torch's default threads unless --threads.

Prints a summary JSON line: {"system": "pytorch-plain", "train_seconds": .., "accuracy": .., ...}
"""

import time

T0 = time.perf_counter()

import argparse
import gzip
import json
import os
import sys
from pathlib import Path

import numpy as np


def idx(path: Path, offset: int) -> np.ndarray:
    with gzip.open(path) as f:
        return np.frombuffer(f.read(), np.uint8, offset=offset)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--mnist-dir", type=Path, default=Path(os.environ.get("MNIST_DIR", "data/mnist")))
    args = p.parse_args(argv)
    import torch
    from torch import nn

    torch.set_num_threads(args.threads)
    d = args.mnist_dir
    X = torch.from_numpy(idx(d / "train-images-idx3-ubyte.gz", 16).reshape(-1, 784).astype(np.float32) / 255)
    y = torch.from_numpy(idx(d / "train-labels-idx1-ubyte.gz", 8).astype(np.int64))
    X_test = torch.from_numpy(idx(d / "t10k-images-idx3-ubyte.gz", 16).reshape(-1, 784).astype(np.float32) / 255)
    y_test = torch.from_numpy(idx(d / "t10k-labels-idx1-ubyte.gz", 8).astype(np.int64))
    torch.manual_seed(123)
    model = nn.Sequential(nn.Linear(784, 1000), nn.ReLU(), nn.Linear(1000, 10))
    for layer in (model[0], model[2]):
        nn.init.xavier_normal_(layer.weight)
        nn.init.zeros_(layer.bias)
    opt = torch.optim.SGD(model.parameters(), lr=0.006, momentum=0.9, nesterov=True, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    t_train = time.perf_counter()
    for _ in range(args.epochs):
        perm = torch.randperm(len(y))
        total = 0.0
        for i in range(0, len(y), 128):
            batch = perm[i : i + 128]
            opt.zero_grad()
            loss = loss_fn(model(X[batch]), y[batch])
            loss.backward()
            opt.step()
            total += loss.item()
    train_seconds = time.perf_counter() - t_train
    with torch.no_grad():
        accuracy = float((model(X_test).argmax(1) == y_test).float().mean())
    print(
        json.dumps(
            {
                "system": "pytorch-plain",
                "threads": args.threads,
                "epochs": args.epochs,
                "train_seconds": round(train_seconds, 3),
                "accuracy": accuracy,
                "wall_seconds": round(time.perf_counter() - T0, 3),
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
