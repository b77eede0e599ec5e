"""Build the zip that `spark-submit --py-files` ships to executors that lack the package."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def build_zip(out: str | Path) -> Path:
    """dist_mnist/**/*.py into a zip with `dist_mnist/` at its top level, written atomically."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(PACKAGE.rglob("*.py")):
            z.write(path, Path("dist_mnist") / path.relative_to(PACKAGE))
    tmp.replace(out)
    return out


if __name__ == "__main__":
    print(build_zip(sys.argv[1] if len(sys.argv) > 1 else "dist/dist_mnist.zip"))
