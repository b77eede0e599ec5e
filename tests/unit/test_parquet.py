"""The Parquet layout: round trip through pyarrow, and every malformed table refused by name."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dist_mnist.data.parquet import SCHEMA, count_rows, from_table, read_files, to_table
from dist_mnist.files.paths import local_path

from ..support.fakes import unique_images


def _good(n=5):
    return unique_images(n), (np.arange(n) % 10).astype(np.uint8)


def test_round_trip_through_a_file(tmp_path):
    images, labels = _good(7)
    table = to_table(images, labels)
    assert table.schema == SCHEMA
    pq.write_table(table, tmp_path / "a.parquet")
    pq.write_table(to_table(images[:2], labels[:2]), tmp_path / "b.parquet")
    got_images, got_labels = read_files([str(tmp_path / "a.parquet"), "file://" + str(tmp_path / "b.parquet")])
    assert got_images.dtype == np.uint8 and got_labels.dtype == np.uint8
    np.testing.assert_array_equal(got_images, np.concatenate([images, images[:2]]))
    np.testing.assert_array_equal(got_labels, np.concatenate([labels, labels[:2]]))
    assert count_rows(str(tmp_path / "a.parquet")) == 7


def test_sliced_chunked_and_large_binary_tables():
    images, labels = _good(10)
    table = pa.concat_tables([to_table(images[:4], labels[:4]), to_table(images[4:], labels[4:])]).slice(3, 5)
    got_images, got_labels = from_table(table, "t")
    np.testing.assert_array_equal(got_images, images[3:8])
    np.testing.assert_array_equal(got_labels, labels[3:8])
    large = pa.table(
        {"label": pa.array(labels, pa.int64()), "image": pa.array([r.tobytes() for r in images], pa.large_binary())}
    )
    np.testing.assert_array_equal(from_table(large, "t")[0], images)


def test_empty_table():
    images, labels = from_table(to_table(np.empty((0, 784), np.uint8), np.empty(0, np.uint8)), "t")
    assert images.shape == (0, 784) and labels.shape == (0,)


def _table(labels, images, label_type=pa.int32(), image_type=pa.binary()):
    return pa.table({"label": pa.array(labels, label_type), "image": pa.array(images, image_type)})


@pytest.mark.parametrize(
    "table, fragment",
    [
        (pa.table({"image": pa.array([b"\0" * 784])}), "missing column(s) ['label']"),
        (pa.table({"label": pa.array([1], pa.int32())}), "missing column(s) ['image']"),
        (_table([1.0], [b"\0" * 784], label_type=pa.float64()), "column 'label' has type double"),
        (_table(["1"], [b"\0" * 784], label_type=pa.string()), "column 'label' has type string"),
        (_table([1], ["x" * 784], image_type=pa.string()), "column 'image' has type string"),
        (_table([1, None], [b"\0" * 784] * 2), "column 'label' has 1 null values"),
        (_table([1, 2], [b"\0" * 784, None]), "column 'image' has 1 null values"),
        (_table([1, 10], [b"\0" * 784] * 2), "label 10 at row 1 is outside the model's classes 0-9"),
        (_table([-1], [b"\0" * 784]), "label -1 at row 0 is outside"),
        (_table([1, 2], [b"\0" * 784, b"\0" * 783]), "image at row 1 has 783 bytes, expected 784"),
        (_table([1], [b"\0" * 785]), "image at row 0 has 785 bytes"),
    ],
)
def test_malformed_tables_are_refused(table, fragment):
    with pytest.raises(ValueError) as info:
        from_table(table, "DATA/train/part-00000.parquet")
    assert str(info.value).startswith("DATA/train/part-00000.parquet: ")
    assert fragment in str(info.value)


def test_not_parquet_names_the_file(tmp_path):
    bad = tmp_path / "part-00000.parquet"
    bad.write_text("this is not parquet")
    with pytest.raises(ValueError, match=f"{bad}: cannot be read as Parquet"):
        read_files([str(bad)])
    with pytest.raises(ValueError, match=f"{bad}: cannot be read as Parquet"):
        count_rows(str(bad))
    with pytest.raises(ValueError, match="cannot be read as Parquet"):
        read_files([str(tmp_path / "missing.parquet")])


def test_local_path():
    assert local_path("file:/a/b") == "/a/b"
    assert local_path("file:///a/b") == "/a/b"
    assert local_path("/a/b") == "/a/b"
    assert local_path("hdfs://nn/a") == "hdfs://nn/a"


def _features_table(rows, value_type=pa.float32()):
    return pa.table({"label": pa.array([1] * len(rows), pa.int32()), "features": pa.array(rows, pa.list_(value_type))})


def test_features_column_gives_float32_rows_as_given():
    rows = [[0.5, -2.0, 3.25], [1e-3, 0.0, 7.0]]
    for value_type in (pa.float32(), pa.float64()):
        x, y = from_table(_features_table(rows, value_type), "t", n_in=3)
        assert x.dtype == np.float32 and x.shape == (2, 3)
        np.testing.assert_array_equal(x, np.array(rows, np.float32))
        np.testing.assert_array_equal(y, [1, 1])
    # a slice of a bigger table (offsets not starting at 0) reads the right rows
    x, _ = from_table(_features_table([*rows, [9.0, 9.0, 9.0]]).slice(1, 2), "t", n_in=3)
    np.testing.assert_array_equal(x, np.array([rows[1], [9.0, 9.0, 9.0]], np.float32))


@pytest.mark.parametrize(
    "table, fragment",
    [
        (_features_table([[1.0, 2.0, 3.0], [1.0, 2.0]]), "'features' at row 1 has 2 values, expected 3"),
        (_features_table([[1.0, None, 3.0]]), "column 'features' has a null value at row 0"),
        (_features_table([[1.0, 2.0, 3.0], None]), "column 'features' has 1 null values"),
        (
            pa.table({"label": pa.array([1], pa.int32()), "features": pa.array([["a", "b", "c"]])}),
            "column 'features' has type list<item: string>, expected an array of float or double",
        ),
        (
            pa.table(
                {"label": pa.array([1], pa.int32()), "features": pa.array([[1.0] * 3]), "image": pa.array([b"\0" * 3])}
            ),
            "has both 'image' and 'features' columns",
        ),
    ],
)
def test_malformed_features_are_refused(table, fragment):
    with pytest.raises(ValueError) as info:
        from_table(table, "STAGED/train/part-00000.parquet", n_in=3)
    assert str(info.value).startswith("STAGED/train/part-00000.parquet: ")
    assert fragment in str(info.value)


def test_image_width_follows_the_network():
    x, _ = from_table(_table([1, 2], [b"\x01\x02", b"\x03\x04"]), "t", n_in=2)
    np.testing.assert_array_equal(x, [[1, 2], [3, 4]])
    with pytest.raises(ValueError, match="image at row 0 has 784 bytes, expected 2"):
        from_table(_table([1], [b"\0" * 784]), "t", n_in=2)


@pytest.mark.parametrize(
    "rows, value_type, fragment",
    [
        ([[1.0, 2.0, 3.0], [1.0, float("nan"), 3.0]], pa.float32(), "'features' has a NaN at row 41, index 1;"),
        ([[float("inf"), 2.0, 3.0]], pa.float32(), "'features' has inf at row 40, index 0;"),
        ([[1.0, 2.0, 3.0], [0.0, 0.0, float("-inf")]], pa.float64(), "'features' has -inf at row 41, index 2;"),
        ([[1.0, 1e300, 3.0]], pa.float64(), "'features' has inf at row 40, index 1;"),  # beyond float32's range
    ],
)
def test_non_finite_features_are_refused_with_the_file_the_row_and_the_index(rows, value_type, fragment):
    with pytest.raises(ValueError) as info:
        from_table(_features_table(rows, value_type), "STAGED/train/part-00003.parquet", first_row=40, n_in=3)
    assert str(info.value) == f"STAGED/train/part-00003.parquet: column {fragment} features must be finite numbers"


def test_first_nonfinite_and_the_lenient_read():
    from dist_mnist.data.parquet import features_of, first_nonfinite

    assert first_nonfinite(np.zeros((3, 4), np.float32)) is None
    x = np.zeros((3, 4), np.float32)
    x[2, 1], x[1, 3] = np.inf, np.nan
    assert first_nonfinite(x) == (1, 3)
    # strict=False (transform's handleInvalid): a null value reads as NaN, nothing is refused
    got = features_of(pa.array([[1.0, None], [float("nan"), 2.0]], pa.list_(pa.float64())), "t", strict=False)
    np.testing.assert_array_equal(got, np.array([[1.0, np.nan], [np.nan, 2.0]], np.float32))
