"""Run files: atomic writes, model and checkpoint round trips, and refused models."""

import json
import os

import numpy as np
import pytest

from dist_mnist.files.atomic import atomic_directory, atomic_write_bytes
from dist_mnist.files.model import load_model, save_model
from dist_mnist.files.npz import read_npz
from dist_mnist.nn.model import init_params

SIZES = [784, 8, 10]


def _meta(sizes=SIZES):
    return {"layer_sizes": list(sizes), "config": {"seed": 1}}


def test_atomic_write_replaces_content(tmp_path):
    path = tmp_path / "f.bin"
    atomic_write_bytes(path, b"old")
    atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["f.bin"]


def test_atomic_write_keeps_the_old_file_when_the_rename_fails(tmp_path, monkeypatch):
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")

    def fail(src, dst):
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk on fire"):
        atomic_write_bytes(path, b"new content")
    monkeypatch.undo()
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f.bin"]  # no temporary file left behind


def test_atomic_write_keeps_the_old_file_when_the_write_fails(tmp_path, monkeypatch):
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")

    def fail(fd):
        raise OSError("fsync failed")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="fsync failed"):
        atomic_write_bytes(path, b"new content")
    monkeypatch.undo()
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["f.bin"]


def test_atomic_directory(tmp_path):
    final = tmp_path / "D"
    with atomic_directory(final) as tmp:
        (tmp / "a").write_text("1")
        assert not final.exists()
    assert (final / "a").read_text() == "1"
    with pytest.raises(FileExistsError, match="--overwrite"), atomic_directory(final):
        pass
    with pytest.raises(RuntimeError), atomic_directory(final, overwrite=True) as tmp:
        (tmp / "b").write_text("2")
        raise RuntimeError("boom")
    assert sorted(os.listdir(tmp_path)) == ["D"] and os.listdir(final) == ["a"]
    with atomic_directory(final, overwrite=True) as tmp:
        (tmp / "b").write_text("2")
    assert os.listdir(final) == ["b"] and sorted(os.listdir(tmp_path)) == ["D"]


def test_model_round_trip(tmp_path):
    params = init_params(SIZES, seed=4)
    save_model(tmp_path, params, _meta())
    loaded, meta = load_model(tmp_path)
    assert meta == _meta() and list(loaded) == list(params)
    for k in params:
        assert loaded[k].dtype == np.float32
        np.testing.assert_array_equal(loaded[k], params[k])


def _write_model(run_dir, arrays, sizes=SIZES):
    np.savez(run_dir / "model.npz", **arrays)
    (run_dir / "model.json").write_text(json.dumps(_meta(sizes)))


def _load_error(run_dir) -> str:
    with pytest.raises(ValueError) as info:
        load_model(run_dir)
    return str(info.value)


def test_load_model_missing_arrays(tmp_path):
    params = init_params(SIZES, 0)
    del params["b1"]
    _write_model(tmp_path, params)
    msg = _load_error(tmp_path)
    assert str(tmp_path / "model.npz") in msg and "missing arrays ['b1']" in msg


def test_load_model_unexpected_arrays(tmp_path):
    _write_model(tmp_path, {**init_params(SIZES, 0), "W9": np.zeros(1, np.float32)})
    assert "unexpected arrays ['W9']" in _load_error(tmp_path)


def test_load_model_wrong_shape(tmp_path):
    params = init_params(SIZES, 0)
    params["W1"] = params["W1"].T.copy()
    _write_model(tmp_path, params)
    msg = _load_error(tmp_path)
    assert "W1" in msg and "(10, 8)" in msg and "(8, 10)" in msg


def test_load_model_wrong_dtype(tmp_path):
    params = init_params(SIZES, 0)
    params["W0"] = params["W0"].astype(np.float64)
    _write_model(tmp_path, params)
    assert "W0 has dtype float64, expected float32" in _load_error(tmp_path)


def test_load_model_non_finite(tmp_path):
    params = init_params(SIZES, 0)
    params["b0"][3] = np.nan
    _write_model(tmp_path, params)
    assert "b0 has NaN or inf" in _load_error(tmp_path)


def test_load_model_layer_sizes_not_matching_arrays(tmp_path):
    _write_model(tmp_path, init_params(SIZES, 0), sizes=[784, 9, 10])
    msg = _load_error(tmp_path)
    assert "W0" in msg and "(784, 8)" in msg and "(784, 9)" in msg


@pytest.mark.parametrize("sizes", ["no", [784], [784, -1, 10], [784, 1.5, 10]])
def test_load_model_bad_layer_sizes_in_json(tmp_path, sizes):
    np.savez(tmp_path / "model.npz", **init_params(SIZES, 0))
    (tmp_path / "model.json").write_text(json.dumps({"layer_sizes": sizes}))
    msg = _load_error(tmp_path)
    assert str(tmp_path / "model.json") in msg and "layer_sizes" in msg


def test_load_model_missing_and_corrupt_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"model\.json"):
        load_model(tmp_path)
    (tmp_path / "model.json").write_text("{not json")
    assert "not valid JSON" in _load_error(tmp_path)
    (tmp_path / "model.json").write_text("[1, 2]")
    assert "expected a JSON object" in _load_error(tmp_path)
    (tmp_path / "model.json").write_text(json.dumps(_meta()))
    with pytest.raises(FileNotFoundError, match=r"model\.npz"):
        load_model(tmp_path)
    (tmp_path / "model.npz").write_bytes(b"PK\x03\x04 garbage")
    assert "not a valid .npz" in _load_error(tmp_path)
    save_model(tmp_path, init_params(SIZES, 0), _meta())
    whole = (tmp_path / "model.npz").read_bytes()
    (tmp_path / "model.npz").write_bytes(whole[: len(whole) // 2])  # truncated
    assert "not a valid .npz" in _load_error(tmp_path)


class _Payload:
    """Unpickling this creates a marker file: proof that a pickle was executed."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("key", ["W0", "extra"])
def test_pickled_object_arrays_are_refused_and_never_unpickled(tmp_path, key):
    marker = tmp_path / "PWNED"
    params = init_params(SIZES, 0)
    params[key] = np.array([_Payload(marker)], dtype=object)
    _write_model(tmp_path, params)
    assert not marker.exists()
    msg = _load_error(tmp_path)
    assert "pickled object array" in msg and str(tmp_path / "model.npz") in msg
    assert not marker.exists()
    with pytest.raises(ValueError, match="pickled"):
        read_npz(tmp_path / "model.npz")
    assert not marker.exists()


def test_atomic_writes_leave_files_readable_as_the_umask_allows(tmp_path):
    import os
    import stat

    from dist_mnist.files.atomic import atomic_write_bytes

    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "f.bin", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f.bin").stat().st_mode) == 0o644
