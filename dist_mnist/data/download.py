"""`dist-mnist download`: fetch the four canonical .gz files from the public mirrors, verified."""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

from dist_mnist.data import idx, mnist
from dist_mnist.files.atomic import atomic_write_bytes
from dist_mnist.hints import Log


def fetch(url: str, timeout: float) -> bytes:
    """The body at `url` (overridable in tests)."""
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


def download(
    out: str | os.PathLike, mirrors: tuple[str, ...] = mnist.MIRRORS, timeout: float = 20.0, log: Log = print
) -> list[Path]:
    """Download, verify (MD5 of the .gz, SHA-256 of its content) and atomically write each file."""
    out = Path(out)
    written = []
    for stem in mnist.ALL_STEMS:
        target = out / f"{stem}.gz"
        if target.exists():
            mnist.verify(target, stem, idx.read_bytes(target))
            log(f"{target}: present and verified")
            written.append(target)
            continue
        errors = []
        for mirror in mirrors:
            url = f"{mirror}{stem}.gz"
            try:
                data = fetch(url, timeout)
            except (urllib.error.URLError, OSError, TimeoutError) as e:
                errors.append(f"{url}: {getattr(e, 'reason', e)}")
                continue
            md5 = hashlib.md5(data).hexdigest()
            if md5 != mnist.MD5_GZ[stem]:
                errors.append(f"{url}: MD5 {md5}, expected {mnist.MD5_GZ[stem]}")
                continue
            mnist.verify(Path(url), stem, idx.read_bytes_from(data, url))
            out.mkdir(parents=True, exist_ok=True)  # only now: a failed download leaves no empty dir
            atomic_write_bytes(target, data)
            log(f"{target}: downloaded from {mirror} and verified")
            written.append(target)
            break
        else:
            raise RuntimeError(
                f"could not download {stem}.gz ({'; '.join(errors)}). If this machine is offline, copy the "
                f"four MNIST files into a directory and pass it as --source DIR, or set MNIST_DIR"
            )
    return written
