"""Where the tests marked `mnist` get MNIST from, and the skip reason when they cannot."""

from pathlib import Path

from dist_mnist.data import download as download_module
from dist_mnist.data.mnist import ALL_STEMS

from ..support import mnist

find_mnist = mnist.find_mnist.__wrapped__  # uncached


def offline(url: str, timeout: float) -> bytes:
    raise OSError("Temporary failure in name resolution")


def test_mnist_dir_with_the_files_is_used_as_is(tmp_path, monkeypatch):
    for stem in ALL_STEMS:
        (tmp_path / f"{stem}.gz").write_bytes(b"")
    monkeypatch.setenv("MNIST_DIR", str(tmp_path))
    assert find_mnist() == (tmp_path, "")


def test_no_copy_and_no_download_gives_a_reason_naming_mnist(tmp_path, monkeypatch):
    monkeypatch.setattr(download_module, "fetch", offline)
    monkeypatch.setenv("MNIST_DIR", str(tmp_path / "empty"))
    path, reason = find_mnist()
    assert path is None
    assert reason.startswith("needs MNIST: no copy in") and "name resolution" in reason and "MNIST_DIR" in reason
    assert not Path(tmp_path / "empty").exists()  # a failed download leaves nothing


def test_without_mnist_dir_the_shared_copy_comes_next(tmp_path, monkeypatch):
    monkeypatch.delenv("MNIST_DIR", raising=False)
    monkeypatch.setattr(mnist, "SHARED_MNIST", tmp_path / "shared")
    monkeypatch.setattr(mnist, "DOWNLOAD_DIR", tmp_path / "raw")
    monkeypatch.setattr(download_module, "fetch", offline)
    assert str(tmp_path / "raw") in find_mnist()[1]
    (tmp_path / "shared").mkdir()
    assert str(tmp_path / "shared") in find_mnist()[1]
