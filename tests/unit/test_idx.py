"""The strict IDX reader, on bytes built here: good files parse, bad ones name file and problem."""

import gzip

import numpy as np
import pytest

from dist_mnist.data import idx, mnist

from ..support.fakes import fake_mnist_dir, idx_images, idx_labels, unique_images, write

GZ = pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])


@GZ
def test_good_images_and_labels_parse(tmp_path, gz):
    images = unique_images(5)
    labels = np.array([0, 9, 3, 3, 7])
    pi = write(tmp_path / "images", idx_images(images), gz)
    pl = write(tmp_path / "labels", idx_labels(labels), gz)
    got = idx.read_images(pi)
    assert got.dtype == np.uint8 and got.shape == (5, 784)
    np.testing.assert_array_equal(got, images)
    got_labels = idx.read_labels(pl)
    assert got_labels.dtype == np.uint8
    np.testing.assert_array_equal(got_labels, labels)


def test_zero_images_parse(tmp_path):
    path = write(tmp_path / "images", idx_images(np.empty((0, 784), np.uint8)))
    assert idx.read_images(path).shape == (0, 784)


def _expect(reader, path, *fragments, exc=ValueError):
    with pytest.raises(exc) as info:
        reader(path)
    msg = str(info.value)
    assert str(path) in msg, msg
    for fragment in fragments:
        assert fragment in msg, msg
    return msg


@GZ
def test_truncated_images(tmp_path, gz):
    data = idx_images(unique_images(3))[:-10]
    _expect(idx.read_images, write(tmp_path / "images", data, gz), "truncated", "(3, 28, 28)")


@GZ
def test_truncated_header(tmp_path, gz):
    _expect(idx.read_labels, write(tmp_path / "labels", idx_labels([1, 2])[:6], gz), "too short")


@GZ
def test_trailing_bytes(tmp_path, gz):
    _expect(idx.read_labels, write(tmp_path / "labels", idx_labels([1, 2, 3]) + b"\0", gz), "trailing bytes")


@GZ
def test_wrong_magic(tmp_path, gz):
    path = write(tmp_path / "images", idx_images(unique_images(2), magic=2049), gz)
    _expect(idx.read_images, path, "magic number 2049", "expected 2051")
    path = write(tmp_path / "labels", idx_labels([1], magic=2051), gz)
    _expect(idx.read_labels, path, "magic number 2051", "expected 2049")


@GZ
@pytest.mark.parametrize("count, problem", [(5, "truncated"), (2, "trailing bytes")])
def test_header_count_not_matching_size(tmp_path, gz, count, problem):
    path = write(tmp_path / "images", idx_images(unique_images(3), count=count), gz)
    _expect(idx.read_images, path, problem, f"({count}, 28, 28)")
    path = write(tmp_path / "labels", idx_labels([1, 2, 3], count=count), gz)
    _expect(idx.read_labels, path, problem, f"({count},)")


def test_corrupt_gzip_stream(tmp_path):
    good = gzip.compress(idx_images(unique_images(4)), mtime=0)
    flipped = bytearray(good)
    for i in range(20, 40):
        flipped[i] ^= 0xFF
    path = tmp_path / "images.gz"
    path.write_bytes(bytes(flipped))
    _expect(idx.read_images, path, "corrupt gzip")
    path.write_bytes(good[: len(good) // 2])  # cut mid-stream
    _expect(idx.read_images, path, "corrupt gzip")
    path.write_bytes(good[:-4] + b"\0\0\0\0")  # wrong length trailer
    _expect(idx.read_images, path, "corrupt gzip")


@GZ
def test_labels_outside_0_to_9(tmp_path, gz):
    path = write(tmp_path / "labels", idx_labels([0, 9, 10, 255]), gz)
    _expect(idx.read_labels, path, "label 10 at index 2", "outside 0-9", "2 bad labels")


@GZ
def test_wrong_image_dimensions(tmp_path, gz):
    images = np.zeros((2, 27 * 28), np.uint8)
    path = write(tmp_path / "images", idx_images(images, rows=27, cols=28), gz)
    _expect(idx.read_images, path, "27x28", "expected 28x28")


@GZ
def test_empty_file(tmp_path, gz):
    _expect(idx.read_images, write(tmp_path / "images", b"", gz), "too short")


def test_directory_and_missing_file(tmp_path):
    (tmp_path / "adir").mkdir()
    _expect(idx.read_images, tmp_path / "adir", "is a directory")
    _expect(idx.read_labels, tmp_path / "missing", "no such file", exc=FileNotFoundError)


def test_check_pair_names_both_files(tmp_path):
    with pytest.raises(ValueError) as info:
        idx.check_pair(np.zeros((3, 784), np.uint8), np.zeros(4, np.uint8), tmp_path / "i", tmp_path / "l")
    msg = str(info.value)
    assert str(tmp_path / "i") in msg and str(tmp_path / "l") in msg and "3 images" in msg and "4 labels" in msg


@GZ
def test_load_split_with_different_counts(tmp_path, gz):
    source, _ = fake_mnist_dir(tmp_path / "src", n_train=6, n_test=4, gz=gz)
    write(source / "t10k-labels-idx1-ubyte", idx_labels([1, 2, 3]), gz)  # 3 labels for 4 images
    with pytest.raises(ValueError) as info:
        mnist.load_split(source, "test", check=False)
    assert "t10k-images-idx3-ubyte" in str(info.value) and "t10k-labels-idx1-ubyte" in str(info.value)
    assert "4 images" in str(info.value) and "3 labels" in str(info.value)


@GZ
def test_load_split_without_check(tmp_path, gz):
    source, fake = fake_mnist_dir(tmp_path / "src", n_train=6, n_test=4, gz=gz)
    images, labels, digests = mnist.load_split(source, "train", check=False)
    np.testing.assert_array_equal(images, fake["arrays"]["train"][0])
    np.testing.assert_array_equal(labels, fake["arrays"]["train"][1])
    assert digests == {}


def test_load_split_checks_the_published_sha256(tmp_path):
    source, _ = fake_mnist_dir(tmp_path / "src", n_train=6, n_test=4)
    with pytest.raises(ValueError) as info:
        mnist.load_split(source, "train")
    msg = str(info.value)
    assert str(source / "train-images-idx3-ubyte.gz") in msg and "SHA-256" in msg
    assert mnist.SHA256_UNCOMPRESSED["train-images-idx3-ubyte"] in msg


def test_load_split_passes_with_matching_digests(tmp_path, monkeypatch):
    source, fake = fake_mnist_dir(tmp_path / "src", n_train=6, n_test=4)
    monkeypatch.setattr(mnist, "SHA256_UNCOMPRESSED", fake["sha256"])
    _, _, digests = mnist.load_split(source, "test")
    assert digests == {s: fake["sha256"][s] for s in mnist.SPLITS["test"]}


def test_find_file_prefers_gz_then_raw_and_names_what_is_missing(tmp_path):
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"x")
    assert mnist.find_file(tmp_path, "train-labels-idx1-ubyte") == tmp_path / "train-labels-idx1-ubyte"
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(b"x")
    assert mnist.find_file(tmp_path, "train-labels-idx1-ubyte") == tmp_path / "train-labels-idx1-ubyte.gz"
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte"):
        mnist.find_file(tmp_path, "t10k-images-idx3-ubyte")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        mnist.find_file(tmp_path / "nope", "t10k-images-idx3-ubyte")
