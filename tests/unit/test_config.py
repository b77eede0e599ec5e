"""Run configuration: tutorial defaults, TOML + --set layering, and rejected values."""

import dataclasses
import sys
from pathlib import Path

import pytest

from dist_mnist.config import RUN_SETTINGS, TrainConfig, config_from_dict, differing_keys, load_config, parse_set

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TUTORIAL = Path(__file__).resolve().parents[2] / "conf" / "tutorial.toml"


def test_defaults_are_the_tutorials():
    c = TrainConfig()
    assert (c.seed, c.batch_size, c.epochs) == (123, 128, 15)
    assert (c.learning_rate, c.momentum, c.l2) == (0.006, 0.9, 1e-4)
    assert c.layer_sizes == (784, 1000, 10)
    assert (c.updater, c.activation, c.weight_init) == ("nesterovs", "relu", "xavier")


def test_tutorial_toml_equals_defaults():
    table = tomllib.loads(TUTORIAL.read_text())
    defaults = TrainConfig()
    for key, value in table.items():
        expected = getattr(defaults, key)
        assert (tuple(value) if isinstance(value, list) else value) == expected, key
    assert load_config(TUTORIAL) == defaults


def test_toml_then_set_layering(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('learning_rate = 0.01\nbatch_size = 64\nlayer_sizes = [784, 32, 10]\nmode = "sync"\n')
    c = load_config(path, ["batch_size=32", "epochs=3", "updater=sgd"])
    assert c.learning_rate == 0.01  # from the file
    assert c.batch_size == 32  # --set wins over the file
    assert c.epochs == 3 and c.updater == "sgd" and c.mode == "sync"
    assert c.layer_sizes == (784, 32, 10) and isinstance(c.layer_sizes, tuple)
    assert c.momentum == 0.9  # untouched default
    assert load_config(None, []) == TrainConfig()


def test_set_values_are_toml_or_bare_strings():
    assert parse_set("learning_rate=1e-3") == ("learning_rate", 1e-3)
    assert parse_set(" mode = average ") == ("mode", "average")
    assert parse_set('mode="sync"') == ("mode", "sync")
    assert parse_set("layer_sizes=[784, 5, 10]") == ("layer_sizes", [784, 5, 10])
    with pytest.raises(ValueError, match="key=value"):
        parse_set("learning_rate")


def test_int_given_for_float_is_accepted():
    assert load_config(None, ["learning_rate=1"]).learning_rate == 1.0


@pytest.mark.parametrize(
    "typo, suggestion", [("learning_rat", "learning_rate"), ("batchsize", "batch_size"), ("epoch", "epochs")]
)
def test_unknown_key_suggests_the_nearest(typo, suggestion):
    with pytest.raises(ValueError) as info:
        load_config(None, [f"{typo}=1"])
    assert f"unknown key {typo!r}" in str(info.value) and f"did you mean {suggestion!r}" in str(info.value)


def test_unknown_key_in_toml_names_the_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("learning_rat = 0.1\n")
    with pytest.raises(ValueError) as info:
        load_config(path)
    assert str(path) in str(info.value) and "'learning_rate'" in str(info.value)


def test_hopeless_key_lists_valid_keys():
    with pytest.raises(ValueError, match="valid keys: seed, layer_sizes"):
        load_config(None, ["zzzzzzzz=1"])


@pytest.mark.parametrize(
    "item, fragment",
    [
        ("batch_size=1.5", "batch_size must be int"),
        ("batch_size=true", "batch_size must be int"),
        ("epochs=ten", "epochs must be int"),
        ("learning_rate=fast", "learning_rate must be float"),
        ("learning_rate=true", "learning_rate must be float"),
        ("layer_sizes=784", "layer_sizes must be a list of ints"),
        ("layer_sizes=[784, 1.5, 10]", "layer_sizes must be a list of ints"),
        ("mode=3", "mode must be str"),
    ],
)
def test_wrong_types_name_the_key(item, fragment):
    with pytest.raises(ValueError, match=fragment):
        load_config(None, [item])


def test_wrong_type_in_toml_names_file_and_key(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('batch_size = "big"\n')
    with pytest.raises(ValueError) as info:
        load_config(path)
    assert str(path) in str(info.value) and "batch_size must be int" in str(info.value)


@pytest.mark.parametrize("key", ["learning_rate", "outer_learning_rate"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "0", "0.0", "-0.1"])
def test_learning_rate_must_be_finite_and_positive(key, value):
    with pytest.raises(ValueError, match=f"{key} must be a finite number > 0"):
        load_config(None, [f"{key}={value}"])


@pytest.mark.parametrize("key", ["batch_size", "epochs", "averaging_frequency"])
@pytest.mark.parametrize("value", ["0", "-1"])
def test_counts_must_be_positive(key, value):
    with pytest.raises(ValueError, match=f"{key} must be a finite number > 0"):
        load_config(None, [f"{key}={value}"])


@pytest.mark.parametrize(
    "item, fragment",
    [
        ("momentum=1", "momentum must be finite and >= 0 and < 1"),
        ("momentum=-0.1", "momentum must be"),
        ("momentum=nan", "momentum must be"),
        ("l2=-1e-4", "l2 must be finite and >= 0"),
        ("l2=inf", "l2 must be"),
        ("max_rounds=-1", "max_rounds must be >= 0"),
        ("checkpoint_every_rounds=-2", "checkpoint_every_rounds must be >= 0"),
    ],
)
def test_other_ranges(item, fragment):
    with pytest.raises(ValueError, match=fragment):
        load_config(None, [item])


@pytest.mark.parametrize("sizes", ["[784, 1000, 1]", "[784]", "[784, 0, 10]", "[]"])
def test_layer_sizes_must_be_positive_with_two_classes_at_least(sizes):
    with pytest.raises(ValueError, match="layer_sizes"):
        load_config(None, [f"layer_sizes={sizes}"])


def test_any_inputs_and_classes_are_a_valid_config():
    # the data decides: checked against DATA/metadata.json and on the workers, row by row
    assert load_config(None, ["layer_sizes=[100, 50, 3]"]).layer_sizes == (100, 50, 3)


def test_two_layer_net_is_allowed():
    assert load_config(None, ["layer_sizes=[784, 10]"]).layer_sizes == (784, 10)


@pytest.mark.parametrize(
    "item, key",
    [
        ("mode=async", "mode"),
        ("updater=adam", "updater"),
        ("outer_updater=adam", "outer_updater"),
        ("activation=tanh", "activation"),
        ("weight_init=relu", "weight_init"),
        ("reduce=tree", "reduce"),
    ],
)
def test_unknown_choices(item, key):
    with pytest.raises(ValueError) as info:
        load_config(None, [item])
    assert f"{key} must be one of" in str(info.value) and repr(item.split("=")[1]) in str(info.value)


def test_missing_and_invalid_toml_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="config file not found"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("learning_rate = = 1\n")
    with pytest.raises(ValueError, match="not a TOML file"):
        load_config(bad)


def test_to_dict_round_trips_and_differing_keys():
    c = TrainConfig(learning_rate=0.01, layer_sizes=(784, 20, 10))
    d = c.to_dict()
    assert d["layer_sizes"] == [784, 20, 10] and set(d) == {f.name for f in dataclasses.fields(TrainConfig)}
    assert config_from_dict(d, "x") == c
    assert differing_keys(c, dataclasses.replace(c, epochs=2, seed=1)) == ["seed", "epochs"]
    with pytest.raises(ValueError, match="where: unknown key"):
        config_from_dict({**d, "extra": 1}, "where")


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        TrainConfig().seed = 1


@pytest.mark.parametrize(
    ("workers", "lr"),
    [(1, 0.006), (2, 0.006), (4, 0.012), (16, 0.048), (32, 0.096), (64, 0.192), (128, 0.192 * 2**0.5), (256, 0.384)],
)
def test_the_local_learning_rate_grows_linearly_with_the_workers_up_to_64_then_as_the_square_root(workers, lr):
    from dist_mnist.modes import scaled_learning_rate

    assert scaled_learning_rate(TrainConfig(workers=workers)) == pytest.approx(lr)
    assert scaled_learning_rate(TrainConfig(workers=workers, lr_scaling="none")) == 0.006


@pytest.mark.parametrize(
    ("workers", "worker_steps", "k"),
    [
        (2, 235, 235),
        (16, 30, 235),
        (32, 15, 235),  # up to 32 workers: averaging_frequency (one round an epoch)
        (33, 15, 15),
        (48, 10, 7),
        (64, 8, 4),
        (128, 4, 1),
        (256, 2, 1),
    ],
)  # beyond: W / 32 rounds an epoch
def test_beyond_32_workers_an_epoch_has_w_over_32_rounds(workers, worker_steps, k):
    from dist_mnist.modes import local_steps_per_round

    assert local_steps_per_round(TrainConfig(workers=workers), worker_steps) == k
    assert local_steps_per_round(TrainConfig(workers=workers, averaging_frequency=2), worker_steps) == min(k, 2)
    assert local_steps_per_round(TrainConfig(workers=workers, lr_scaling="none"), worker_steps) == 235


def test_the_reduce_is_a_run_setting():
    assert load_config(None, ["reduce=chain"]).reduce == "chain"
    assert "reduce" in RUN_SETTINGS  # it changes how sums travel, never the model: a resumed run may change it


def test_renamed_settings_keep_their_old_names_in_files_sets_and_saved_configs(tmp_path):
    """transport_port and transport_host became channel_port and channel_host: a config file, a
    --set, and the config a model or checkpoint saved before the rename all still load."""
    from dist_mnist.config import RENAMED, config_from_dict

    assert RENAMED == {"transport_port": "channel_port", "transport_host": "channel_host"}
    path = tmp_path / "old.toml"
    path.write_text('transport_port = 7000\ntransport_host = "10.0.0.5"\n')
    assert (load_config(path).channel_port, load_config(path).channel_host) == (7000, "10.0.0.5")
    assert load_config(None, ["transport_port=7001"]).channel_port == 7001
    saved = {**TrainConfig().to_dict(), "transport_port": 7002}
    del saved["channel_port"]
    assert config_from_dict(saved, "model.json").channel_port == 7002
    with pytest.raises(ValueError, match="--set: channel_port must be int"):  # named as it is now
        load_config(None, ["transport_port=x"])
