"""The distributed trainer against the reference: sync mode is P-invariant, runs are deterministic."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from dist_mnist import schedule
from dist_mnist.config import TrainConfig
from dist_mnist.driver import train
from dist_mnist.files.model import load_model
from dist_mnist.nn.model import init_params
from dist_mnist.nn.steps import Batcher, local_steps
from dist_mnist.nn.updaters import make_updater
from dist_mnist.reference import train_reference

# 1024 rows / 96 = 11 rounds an epoch, the last one partial (64 rows): 14 rounds cross into epoch 2
SYNC = TrainConfig(layer_sizes=(784, 64, 10), batch_size=96, epochs=5, max_rounds=14, mode="sync")
# 512 rows a partition (P=2) / 64 = 8 local steps, 2 a round: 4 rounds an epoch
AVERAGE = TrainConfig(layer_sizes=(784, 32, 10), batch_size=64, epochs=2, mode="average", averaging_frequency=2)


def _model(run_dir):
    params, meta = load_model(run_dir)
    return params, meta


@pytest.mark.parametrize("P, W", [(1, 1), (2, 2), (4, 4), (1, 3)])
def test_sync_mode_equals_the_reference_for_any_worker_count(spark, datasets, arrays, tmp_path, quiet, P, W):
    config = dataclasses.replace(SYNC, workers=W)
    final = train(spark, config, str(datasets[P]), str(tmp_path / "RUN"), log=quiet).scores
    params, meta = _model(tmp_path / "RUN")
    expected, _ = train_reference(SYNC, *arrays["train"], max_steps=SYNC.max_rounds)
    for k in expected:
        np.testing.assert_allclose(params[k], expected[k], rtol=0, atol=1e-5, err_msg=k)
    assert meta["config"] == config.to_dict() and meta["layer_sizes"] == [784, 64, 10]
    assert final["examples"] == len(arrays["test"][1])


@pytest.mark.parametrize("config", [SYNC, AVERAGE], ids=["sync", "average"])
def test_same_config_twice_is_bit_identical(spark, datasets, tmp_path, quiet, config):
    train(spark, config, str(datasets[2]), str(tmp_path / "A"), log=quiet)
    train(spark, config, str(datasets[2]), str(tmp_path / "B"), log=quiet)
    a, _ = _model(tmp_path / "A")
    b, _ = _model(tmp_path / "B")
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_average_mode_learns(spark, datasets, tmp_path, quiet):
    config = TrainConfig(**{**AVERAGE.to_dict(), "epochs": 3})
    final = train(spark, config, str(datasets[2]), str(tmp_path / "RUN"), log=quiet).scores
    assert final["accuracy"] > 0.8  # chance is 0.1


def test_average_mode_on_one_partition_is_a_plain_local_loop(spark, datasets, arrays, tmp_path, quiet):
    """W=1, outer updater none: each round's k local steps continue where the last ended."""
    k, batch, epochs = 3, 64, 2
    config = TrainConfig(
        layer_sizes=(784, 32, 10),
        batch_size=batch,
        epochs=epochs,
        mode="average",
        averaging_frequency=k,
        outer_updater="none",
        workers=1,
    )
    train(spark, config, str(datasets[1]), str(tmp_path / "RUN"), log=quiet)
    got, _ = _model(tmp_path / "RUN")

    images, labels = arrays["train"]
    params = init_params(list(config.layer_sizes), config.seed)
    updater = make_updater(config.updater, config.learning_rate, config.momentum, config.l2)
    state = updater.init_state(params)
    batcher = Batcher(images, labels, batch)
    rounds = schedule.rounds_per_epoch_average([len(labels)], batch, k)
    assert rounds == 6  # 16 batches in rounds of 3: the last round has one batch
    for epoch in range(epochs):
        perm = schedule.epoch_permutation(config.seed, epoch, len(labels), partition=0)
        for r in range(rounds):
            local_steps(params, state, updater, batcher, schedule.local_batches(perm, r, batch, k))
    # the driver adds back n * (local - broadcast) / n in float32: equal up to rounding
    for key in params:
        np.testing.assert_allclose(got[key], params[key], rtol=0, atol=1e-6, err_msg=key)


@pytest.mark.parametrize("W", [1, 2, 4])
def test_sync_mode_on_the_tutorial_network_equals_the_reference(spark, datasets, arrays, tmp_path, quiet, W):
    """The real 784-1000-10 network, 30 rounds (crossing an epoch): W workers = one process."""
    config = TrainConfig(mode="sync", workers=W, max_rounds=30)
    train(spark, config, str(datasets[2]), str(tmp_path / "RUN"), log=quiet)
    params, _ = _model(tmp_path / "RUN")
    expected, _ = train_reference(config, *arrays["train"], max_steps=30)
    for k in expected:
        np.testing.assert_allclose(params[k], expected[k], rtol=0, atol=1e-5, err_msg=k)
