"""`download`: mirrors tried in order, MD5 + SHA-256 verified, nothing written on failure."""

import gzip
import hashlib
import os
import urllib.error

import pytest

from dist_mnist.data import download as download_module
from dist_mnist.data import mnist
from dist_mnist.data.download import download

from ..support.fakes import fake_mnist_dir


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """Fake files served by a patched fetch(): {url: bytes}, with their checksums patched in."""
    src, fake = fake_mnist_dir(tmp_path / "served", 20, 10, gz=True)
    bodies = {stem: (src / f"{stem}.gz").read_bytes() for stem in mnist.ALL_STEMS}
    monkeypatch.setattr(mnist, "SHA256_UNCOMPRESSED", dict(fake["sha256"]))
    monkeypatch.setattr(mnist, "MD5_GZ", {s: hashlib.md5(b).hexdigest() for s, b in bodies.items()})
    served = {}
    for stem, body in bodies.items():
        served[f"https://good.example/{stem}.gz"] = body
        served[f"https://corrupt.example/{stem}.gz"] = gzip.compress(b"not mnist", mtime=0)
    fetched = []

    def fetch(url, timeout):
        fetched.append(url)
        if url not in served:
            raise urllib.error.URLError("Name or service not known")
        return served[url]

    monkeypatch.setattr(download_module, "fetch", fetch)
    return fetched


def test_download_verifies_and_falls_back_to_the_next_mirror(tmp_path, mirror):
    out = tmp_path / "out"
    lines = []
    written = download(
        out, mirrors=("https://down.example/", "https://corrupt.example/", "https://good.example/"), log=lines.append
    )
    assert sorted(p.name for p in written) == sorted(f"{s}.gz" for s in mnist.ALL_STEMS)
    assert sorted(os.listdir(out)) == sorted(f"{s}.gz" for s in mnist.ALL_STEMS)
    assert len(mirror) == 12 and all("good.example" in line for line in lines)
    mnist.load_split(out, "train")  # what was written verifies
    mirror.clear()
    download(out, mirrors=("https://good.example/",), log=lines.append)
    assert mirror == [] and lines[-1].endswith("present and verified")


def test_download_with_only_bad_mirrors_writes_nothing(tmp_path, mirror):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError) as info:
        download(out, mirrors=("https://corrupt.example/", "https://down.example/"), log=lambda s: None)
    msg = str(info.value)
    assert "corrupt.example" in msg and "MD5" in msg and "down.example" in msg and "--source" in msg
    assert not out.exists()
