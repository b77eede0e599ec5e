"""Single-process NumPy peer: dist-mnist's own math on one machine, without Spark.

benchmarks/speed.py runs it beside the PyTorch peer to separate two questions: what Spark costs or
gains against one process running the same kernels (this peer), and how dist-mnist's kernels
compare with PyTorch's (benchmarks/torch_reference.py). It trains the tutorial's recipe with
dist_mnist.reference.train_reference, the oracle sync mode is tested against (the same model,
updater, seeded global minibatches of 128 and float32 arithmetic), with the machine's BLAS threads
(2 by default, as the PyTorch peer's 2 threads), one test-set accuracy each epoch (as both other
systems compute), reading the IDX .gz files itself (as the PyTorch peer does).

Prints a summary JSON line:
{"system": "numpy", "train_seconds": .., "accuracy": .., "wall_seconds": .., "threads": ..}
"""

import time

T0 = time.perf_counter()  # before the imports, as the PyTorch peer's clock

import argparse
import json
import os
import sys
from pathlib import Path

from threadpoolctl import threadpool_limits

from dist_mnist.config import TrainConfig
from dist_mnist.data.idx import read_images, read_labels
from dist_mnist.reference import train_reference


def load_split(mnist_dir: Path, prefix: str):
    """(uint8 images (n, 784), labels (n,)) of 'train' or 't10k', as the shards hold them."""
    images = read_images(mnist_dir / f"{prefix}-images-idx3-ubyte.gz")
    return images, read_labels(mnist_dir / f"{prefix}-labels-idx1-ubyte.gz")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--threads", type=int, default=2, help="BLAS threads")
    p.add_argument("--mnist-dir", type=Path, default=Path(os.environ.get("MNIST_DIR", "data/mnist")))
    args = p.parse_args(argv)
    if args.epochs < 1 or args.threads < 1:
        p.error("--epochs and --threads must be >= 1")
    images, labels = load_split(args.mnist_dir, "train")
    test_images, test_labels = load_split(args.mnist_dir, "t10k")
    config = TrainConfig(epochs=args.epochs, mode="sync")
    t_train = time.perf_counter()
    with threadpool_limits(args.threads, user_api="blas"):
        _, history = train_reference(config, images, labels, test=(test_images, test_labels))
    train_seconds = time.perf_counter() - t_train
    for entry in history:
        print(json.dumps(entry), flush=True)
    print(
        json.dumps(
            {
                "system": "numpy",
                "threads": args.threads,
                "epochs": args.epochs,
                "train_seconds": round(train_seconds, 3),
                "accuracy": history[-1]["test_accuracy"],
                "wall_seconds": round(time.perf_counter() - T0, 3),
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
