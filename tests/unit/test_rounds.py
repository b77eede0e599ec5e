"""rounds.py: Combiner against a longhand float32 fold; average mode at W >= 2 against a longhand
computation; layout invariance; every accepted config runs.

All in process (transport "inprocess": the same round functions the Spark transports run).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import shutil

import numpy as np
import pytest

from dist_mnist import schedule
from dist_mnist.config import MODES, OUTER_UPDATERS, UPDATERS, TrainConfig
from dist_mnist.driver import train
from dist_mnist.files.model import load_model
from dist_mnist.nn.model import init_params, loss_and_grads, to_inputs
from dist_mnist.rounds import Combiner, Plan, RoundResult, combine_all

from ..support.datasets import write_dataset
from ..support.fakes import learnable

N_TRAIN = 50  # W=4: shards of 13, 13, 12, 12 rows; batch 4: 4, 4, 3, 3 minibatches
CONFIG = TrainConfig(
    layer_sizes=(784, 8, 10),
    batch_size=4,
    epochs=2,
    mode="average",
    averaging_frequency=3,
    workers=4,
    outer_updater="nesterovs",
    outer_learning_rate=0.9,
    outer_momentum=0.7,
    learning_rate=0.05,
    transport="inprocess",
)


@pytest.fixture(scope="module")
def arrays():
    return learnable(N_TRAIN, seed=3), learnable(20, seed=4)


def _data(root, arrays, parts):
    return str(write_dataset(root, arrays[0], arrays[1], parts, test_parts=1))


def _nesterov(theta, v, g_sum, batch, lr, mu, l2, weight):
    """DL4J 0.x Nesterovs + L2, longhand in float64: theta -= (mu v - (1+mu) v' + l2 theta) / B."""
    v_new = mu * v - lr * g_sum
    update = mu * v - (1 + mu) * v_new
    if weight:
        update = update + l2 * theta
    return theta - update / batch, v_new


def _longhand(config: TrainConfig, images, labels):
    """What average mode must compute, written out without the project's round, updater or combine code."""
    W, B, k = config.workers, config.batch_size, config.averaging_frequency
    lr = config.learning_rate * max(1, W / 2)  # linear scaling relative to two workers
    params = {key: v.astype(np.float64) for key, v in init_params(list(config.layer_sizes), config.seed).items()}
    velocity = {key: np.zeros_like(v) for key, v in params.items()}
    outer_v = {key: np.zeros_like(v) for key, v in params.items()}
    shards = np.array_split(np.arange(len(labels)), W)
    rounds = -(-max(-(-len(s) // B) for s in shards) // k)
    for epoch in range(config.epochs):
        for r in range(rounds):
            sum_dp = {key: np.zeros_like(v) for key, v in params.items()}
            sum_dv = {key: np.zeros_like(v) for key, v in params.items()}
            seen_total = 0
            for w, rows in enumerate(shards):
                p, v = dict(params), dict(velocity)
                perm = schedule.epoch_permutation(config.seed, epoch, len(rows), partition=w)
                batches = [perm[s * B : (s + 1) * B] for s in range(r * k, min(r * k + k, -(-len(rows) // B)))]
                seen = 0
                for local in batches:
                    X = to_inputs(images[rows[local]])
                    grads, _, n = loss_and_grads(
                        {key: a.astype(np.float32) for key, a in p.items()}, X, labels[rows[local]]
                    )
                    for key in p:
                        p[key], v[key] = _nesterov(
                            p[key],
                            v[key],
                            grads[key].astype(np.float64),
                            n,
                            lr,
                            config.momentum,
                            config.l2,
                            key.startswith("W"),
                        )
                    seen += n
                for key in params:  # example-weighted: a worker with no batch left adds nothing
                    sum_dp[key] += seen * (p[key] - params[key])
                    sum_dv[key] += seen * (v[key] - velocity[key])
                seen_total += seen
            for key in params:
                velocity[key] = velocity[key] + sum_dv[key] / seen_total
                delta = sum_dp[key] / seen_total  # outer Nesterov on -delta as the gradient, batch 1
                params[key], outer_v[key] = _nesterov(
                    params[key], outer_v[key], -delta, 1, config.outer_learning_rate, config.outer_momentum, 0.0, False
                )
    return params


def test_average_mode_equals_the_longhand_computation(tmp_path, arrays):
    # round 2 of each epoch: workers 0 and 1 have one minibatch left, workers 2 and 3 none
    shards = np.array_split(np.arange(N_TRAIN), CONFIG.workers)
    assert [-(-len(s) // CONFIG.batch_size) for s in shards] == [4, 4, 3, 3]
    train(None, CONFIG, _data(tmp_path / "DATA", arrays, 2), str(tmp_path / "RUN"), log=lambda *_: None)
    got, meta = load_model(tmp_path / "RUN")
    assert meta["local_learning_rate"] == pytest.approx(0.1)
    expected = _longhand(CONFIG, *arrays[0])
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], rtol=0, atol=2e-5, err_msg=key)
    assert not np.allclose(got["W0"], init_params(list(CONFIG.layer_sizes), CONFIG.seed)["W0"], atol=1e-3)


@pytest.mark.parametrize("mode", MODES)
def test_the_model_does_not_depend_on_the_file_layout(tmp_path, arrays, mode):
    config = dataclasses.replace(CONFIG, workers=3, mode=mode, max_rounds=8)
    models = []
    for parts in (1, 3, 4, 7):
        run = tmp_path / f"RUN{parts}"
        train(None, config, _data(tmp_path / f"DATA{parts}", arrays, parts), str(run), log=lambda *_: None)
        models.append(load_model(run)[0])
    for other in models[1:]:
        for key in models[0]:
            np.testing.assert_array_equal(other[key], models[0][key], err_msg=key)


@pytest.mark.parametrize("mode, updater, outer", list(itertools.product(MODES, UPDATERS, OUTER_UPDATERS)))
def test_every_accepted_combination_trains(tmp_path, arrays, mode, updater, outer):
    config = dataclasses.replace(CONFIG, mode=mode, updater=updater, outer_updater=outer, workers=2, max_rounds=3)
    final = train(None, config, _data(tmp_path / "DATA", arrays, 2), str(tmp_path / "RUN"), log=lambda *_: None).scores
    assert final["examples"] == 20
    params, _ = load_model(tmp_path / "RUN")
    assert all(np.isfinite(v).all() for v in params.values())


def _write_features_split(path, images, labels, parts):
    """A split in the `features` layout (array<float>): the pixels already divided by 255."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.mkdir(parents=True)
    X = np.multiply(images, np.float32(1 / 255), dtype=np.float32)
    for i, rows in enumerate(np.array_split(np.arange(len(labels)), parts)):
        features = pa.ListArray.from_arrays(
            pa.array(np.arange(len(rows) + 1, dtype=np.int32) * X.shape[1]), pa.array(X[rows].ravel())
        )
        pq.write_table(
            pa.table({"label": pa.array(labels[rows].astype(np.int32)), "features": features}),
            path / f"part-{i:05d}.parquet",
        )


@pytest.mark.parametrize("mode", MODES)
def test_float_features_train_the_same_model_as_the_pixels_they_come_from(tmp_path, arrays, mode):
    # `features` rows (floats, used as given) equal to image/255 must give the model the
    # `image` layout (uint8 bytes scaled by 1/255 on the worker) gives, bit for bit
    config = dataclasses.replace(CONFIG, workers=3, mode=mode, max_rounds=6)
    train(None, config, _data(tmp_path / "PIX", arrays, 2), str(tmp_path / "RUN_PIX"), log=lambda *_: None)
    (train_x, train_y), (test_x, test_y) = arrays
    _write_features_split(tmp_path / "FLT" / "train", train_x, train_y, 3)
    _write_features_split(tmp_path / "FLT" / "test", test_x, test_y, 1)
    final = train(None, config, str(tmp_path / "FLT"), str(tmp_path / "RUN_FLT"), log=lambda *_: None).scores
    pixels, floats = load_model(tmp_path / "RUN_PIX"), load_model(tmp_path / "RUN_FLT")
    assert (pixels[1]["feature_kind"], floats[1]["feature_kind"]) == ("image", "features")
    for key in pixels[0]:
        np.testing.assert_array_equal(floats[0][key], pixels[0][key], err_msg=key)
    assert final["examples"] == len(test_y)


def test_a_run_without_a_test_split_trains_and_keeps_its_loss_history(tmp_path, arrays):
    config = dataclasses.replace(CONFIG, workers=2, epochs=2)
    data = tmp_path / "DATA"
    write_dataset(data, arrays[0], arrays[1], 2)
    shutil.rmtree(data / "test")
    final = train(None, config, str(data), str(tmp_path / "RUN"), log=lambda *_: None, require_test=False).scores
    assert final is None
    metrics = json.loads((tmp_path / "RUN" / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2]
    assert all(np.isfinite(e["train_loss"]) and "test_accuracy" not in e for e in metrics["epochs"])
    assert metrics["final"] is None and not (tmp_path / "RUN" / "evaluation.txt").exists()
    with pytest.raises(FileNotFoundError, match="no such dataset"):
        train(None, config, str(data), str(tmp_path / "RUN2"), log=lambda *_: None)


def _worker_results(seed=0):
    rng = np.random.default_rng(seed)
    sums = [rng.standard_normal(1000).astype(np.float32) * 10.0**e for e in (0, 4, -3)]
    confusion = [rng.integers(0, 5, (3, 3)) for _ in range(3)]
    return [RoundResult(s, 1.5 * w, 10 + w, {w: 0.1 * w}, 100 * w, c) for w, (s, c) in enumerate(zip(sums, confusion))]


def test_combine_adds_field_by_field_in_worker_order_without_touching_the_inputs():
    results = _worker_results()
    before = [r.sums.copy() for r in results]
    total = combine_all(results)
    fold = (results[0].sums + results[1].sums) + results[2].sums  # float32, workers 0, 1, 2
    assert total.sums.dtype == np.float32
    assert total.sums.tobytes() == fold.tobytes()
    assert total.loss == 0.0 + 1.5 + 3.0 and total.n == 10 + 11 + 12 and total.shard_bytes == 300
    assert total.seconds == {0: 0.0, 1: 0.1, 2: 0.2}
    np.testing.assert_array_equal(total.confusion, sum(r.confusion for r in results))
    for r, sums in zip(results, before):
        assert r.sums.tobytes() == sums.tobytes()


def test_the_order_of_the_workers_is_part_of_the_combined_sums():
    results = _worker_results(seed=1)
    reordered = (results[2].sums + results[1].sums) + results[0].sums
    in_order = combine_all(results).sums
    # the order is part of the result: a transport must feed the Combiner in worker order
    assert in_order.tobytes() == ((results[0].sums + results[1].sums) + results[2].sums).tobytes()
    assert not np.array_equal(in_order, reordered)


def test_an_evaluation_only_round_combines_to_empty_sums_and_no_confusion_without_evaluation():
    combiner = Combiner()
    combiner.add(RoundResult(np.zeros(0, np.float32), 2.0, 5))
    combiner.add(RoundResult(np.zeros(0, np.float32), 1.0, 4))
    total = combiner.result()
    assert total.sums.dtype == np.float32 and total.sums.size == 0
    assert (total.loss, total.n, total.confusion) == (3.0, 9, None)


@pytest.mark.parametrize(("workers", "rounds", "k"), [(2, 1, 235), (32, 1, 235), (64, 2, 4), (128, 4, 1)])
def test_a_plan_on_mnist_runs_the_rounds_the_many_worker_rule_gives(workers, rounds, k):
    from dist_mnist.data.shards import Segment, Shard, worker_ranges
    from dist_mnist.nn.flat import layout_of

    config = TrainConfig(workers=workers, layer_sizes=(784, 8, 10))
    shards = tuple(Shard(lo, hi - lo, (Segment("train.parquet", lo, hi),)) for lo, hi in worker_ranges(60_000, workers))
    plan = Plan(config, shards, shards, layout_of(init_params([784, 8, 10], 0)))
    assert (plan.rounds_per_epoch, plan.steps_per_round) == (rounds, k)
