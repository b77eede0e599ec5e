"""spark-submit entry point: `spark-submit jobs/export.py --help`. Same flags as `dist-mnist export`."""

import sys
from pathlib import Path

try:
    import dist_mnist  # noqa: F401 - installed, or shipped with --py-files
except ImportError:  # a source checkout: the package sits beside jobs/
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dist_mnist.cli import run

if __name__ == "__main__":
    run(["export", *sys.argv[1:]])
