"""The single-process reference trainer on a tiny synthetic dataset."""

import numpy as np

from dist_mnist.config import TrainConfig
from dist_mnist.nn.model import init_params
from dist_mnist.reference import train_reference

from ..support.fakes import learnable

CONFIG = TrainConfig(layer_sizes=(784, 32, 10), batch_size=64, epochs=2, mode="sync")


def test_loss_decreases_and_it_learns():
    images, labels = learnable(512, seed=0)
    test = learnable(256, seed=1)
    lines = []
    config = TrainConfig(**{**CONFIG.to_dict(), "layer_sizes": (784, 32, 10), "epochs": 4})
    params, history = train_reference(config, images, labels, test=test, log=lines.append)
    assert [h["epoch"] for h in history] == [1, 2, 3, 4] and lines == history
    assert history[3]["train_loss"] < history[2]["train_loss"] < history[0]["train_loss"]
    assert history[3]["test_accuracy"] > 0.8  # chance is 0.1
    assert all(v.dtype == np.float32 for v in params.values())


def test_two_runs_are_bit_identical():
    images, labels = learnable(512, seed=0)
    a, ha = train_reference(CONFIG, images, labels)
    b, hb = train_reference(CONFIG, images, labels)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert [h["train_loss"] for h in ha] == [h["train_loss"] for h in hb]


def test_max_steps_stops_early():
    images, labels = learnable(512, seed=0)
    zero, history = train_reference(CONFIG, images, labels, max_steps=0)  # 0 = no limit
    assert len(history) == 2
    three, history = train_reference(CONFIG, images, labels, max_steps=3)
    assert history == []  # stopped inside the first epoch (8 steps)
    init = init_params(list(CONFIG.layer_sizes), CONFIG.seed)
    assert not np.array_equal(three["W0"], init["W0"]) and not np.array_equal(three["W0"], zero["W0"])
