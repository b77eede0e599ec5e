"""The real MNIST files for the tests marked `mnist`, found once per session, or the reason why not.

Where they come from, first that works: $MNIST_DIR, the shared copy beside the checkout
(../shared/data/mnist), else `dist-mnist download` (checksums verified) into $MNIST_DIR or
data/raw. Offline and with no copy, the tests that need MNIST skip, saying so; none errors.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from . import REPO

SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist"
DOWNLOAD_DIR = REPO / "data" / "raw"  # where `make train` puts it too
TUTORIAL_ACCURACY = 0.971  # DL4J MLPMnistSingleLayerExample's reported test accuracy after 15 epochs


@functools.lru_cache(maxsize=1)
def find_mnist() -> tuple[Path | None, str]:
    """(directory with the four verified .gz files, "") or (None, why there is none)."""
    from dist_mnist.data.download import download
    from dist_mnist.data.mnist import ALL_STEMS

    if os.environ.get("MNIST_DIR"):
        where = Path(os.environ["MNIST_DIR"])
    elif SHARED_MNIST.is_dir():
        where = SHARED_MNIST
    else:
        where = DOWNLOAD_DIR
    if all((where / f"{stem}.gz").is_file() for stem in ALL_STEMS):
        return where, ""
    try:
        download(where, timeout=10.0, log=lambda line: None)
    except (RuntimeError, ValueError, OSError) as e:
        return None, (
            f"needs MNIST: no copy in {where} and the download failed ({e}); "
            f"set MNIST_DIR to a directory with the four MNIST .gz files"
        )
    return where, ""
