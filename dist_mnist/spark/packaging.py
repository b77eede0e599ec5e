"""The zip of this dist_mnist that executors without the package import (addPyFile, addArtifacts, --py-files).

Its name carries the version and a digest of the sources (dist_mnist-0.1.0-1a2b3c4d5e6f.zip), so
an executor never takes a stale copy of another build for this one.
"""

from __future__ import annotations

import atexit
import hashlib
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

from dist_mnist import __version__

PACKAGE = Path(__file__).resolve().parents[1]  # dist_mnist/
_BUILT: dict[str, Path] = {}  # digest -> this process's zip of it


def sources() -> list[Path]:
    """The package's .py files, in a stable order."""
    return sorted(PACKAGE.rglob("*.py"))


def digest() -> str:
    """A short digest of the package's sources: their paths and bytes."""
    h = hashlib.sha256()
    for path in sources():
        h.update(str(path.relative_to(PACKAGE)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def build_zip(out: str | Path) -> Path:
    """dist_mnist/**/*.py into a zip with `dist_mnist/` at its top level, written atomically."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sources():
            z.write(path, Path("dist_mnist") / path.relative_to(PACKAGE))
    tmp.replace(out)
    return out


def package_zip() -> Path:
    """This process's versioned zip of the package (built once, in a private directory removed at exit)."""
    key = digest()
    if key not in _BUILT:
        where = Path(tempfile.mkdtemp(prefix="dist-mnist-package-"))
        atexit.register(shutil.rmtree, where, True)
        _BUILT[key] = build_zip(where / f"dist_mnist-{__version__}-{key}.zip")
    return _BUILT[key]


if __name__ == "__main__":
    print(build_zip(sys.argv[1] if len(sys.argv) > 1 else "dist/dist_mnist.zip"))
