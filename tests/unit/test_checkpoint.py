"""The checkpoint file: its arrays and meta round-trip, a missing or foreign file is refused,
and checkpoints written before the outer velocity got its own prefix still load."""

import os

import numpy as np
import pytest

from dist_mnist.driver.checkpoint import CHECKPOINT_NPZ, read_arrays, write_arrays
from dist_mnist.files.atomic import atomic_write_npz
from dist_mnist.nn.model import init_params

SIZES = [784, 16, 10]


def test_checkpoint_round_trip(tmp_path):
    params = init_params(SIZES, 1)
    state = {k: np.full_like(v, 0.5) for k, v in params.items()}
    outer = {"W0": np.ones_like(params["W0"])}
    meta = {
        "epoch": 2,
        "round_in_epoch": 3,
        "global_round": 40,
        "config": {"seed": 1},
        "history": [{"epoch": 1, "train_loss": 0.25}],
    }
    write_arrays(tmp_path, params, state, outer, meta)
    assert os.listdir(tmp_path) == [CHECKPOINT_NPZ]
    p, s, o, m = read_arrays(tmp_path)
    assert m == meta and list(p) == list(params) and list(s) == list(state) and list(o) == list(outer)
    for k in params:
        np.testing.assert_array_equal(p[k], params[k])
    for k in state:
        np.testing.assert_array_equal(s[k], state[k])
    np.testing.assert_array_equal(o["W0"], outer["W0"])


def test_read_arrays_without_checkpoint_names_the_dir(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        read_arrays(tmp_path)
    assert str(tmp_path) in str(info.value) and "checkpoint" in str(info.value)


def test_read_arrays_refuses_a_foreign_npz(tmp_path):
    np.savez(tmp_path / CHECKPOINT_NPZ, W0=np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="not a dist-mnist checkpoint"):
        read_arrays(tmp_path)


def test_a_checkpoint_with_the_old_outer_prefix_still_loads(tmp_path):
    params = init_params(SIZES, 1)
    meta = np.frombuffer(b'{"epoch": 0}', np.uint8)
    arrays = {**{f"param/{k}": v for k, v in params.items()}, "state/outer/W0": np.ones(3, np.float32), "meta": meta}
    atomic_write_npz(tmp_path / CHECKPOINT_NPZ, arrays)
    p, s, o, m = read_arrays(tmp_path)
    assert list(p) == list(params) and s == {} and list(o) == ["W0"] and m == {"epoch": 0}
