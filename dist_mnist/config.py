"""The run configuration: every setting once, with its default, in DL4J's tutorial names.

Layers, in order: these defaults, then a TOML file (conf/*.toml), then --set key=value.
Unknown keys and wrong types are rejected with the key named.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from dist_mnist.nn.model import N_CLASSES, N_PIXELS

MODES = ("sync", "average")
TRANSPORTS = ("auto", "barrier", "jobs", "inprocess")
REDUCES = ("driver", "chain")
# how rounds travel, not what they compute: a resumed run may change them
RUN_SETTINGS = (
    "transport",
    "reduce",
    "round_timeout",
    "slot_wait",
    "connect_timeout",
    "channel_port",
    "channel_host",
    "log_every_rounds",
    "tracking",
)
# the names these settings had before: a config file, --set, a saved model or checkpoint may use them
RENAMED = {"transport_port": "channel_port", "transport_host": "channel_host"}
# 0 means "chosen at run time" (TrainConfig.resolved); a run records the choice
AUTO_KEYS = ("workers",)
UPDATERS = ("nesterovs", "sgd")
OUTER_UPDATERS = ("none", "nesterovs")
LR_SCALINGS = ("linear", "none")


@dataclass(frozen=True)
class TrainConfig:
    """DL4J MLPMnistSingleLayerExample's settings, plus how to distribute them."""

    # --- the tutorial's network and optimiser ---
    seed: int = 123  # rngSeed: init, data order, per-partition sampling
    layer_sizes: tuple[int, ...] = (N_PIXELS, 1000, N_CLASSES)  # 784-1000-10
    activation: str = "relu"  # hidden layers; the output is softmax + NLL
    weight_init: str = "xavier"  # N(0, 2/(fan_in+fan_out)), biases 0
    updater: str = "nesterovs"  # or "sgd"
    learning_rate: float = 0.006
    momentum: float = 0.9
    l2: float = 1e-4  # weights only, outside the momentum, as in DL4J 0.x
    batch_size: int = 128
    epochs: int = 15
    # --- distribution ---
    workers: int = 0  # W; 0: the parallelism Spark gives the application (defaultParallelism)
    mode: str = "average"  # "sync": one global minibatch a round; "average": k local steps
    averaging_frequency: int = 235  # k: local steps a round; 235 = one pass over 30,000 rows
    # average mode: local steps at learning_rate x max(1, W/2) (sqrt(W) beyond 64), and beyond 32 workers
    # W/32 rounds an epoch (modes.py: scaled_learning_rate, local_steps_per_round); "none": as given
    lr_scaling: str = "linear"
    outer_updater: str = "nesterovs"  # "none": plain DL4J parameter averaging
    outer_learning_rate: float = 1.0  # step on the averaged delta (DiLoCo-style)
    outer_momentum: float = 0.7
    # --- how rounds travel (the model does not depend on these) ---
    transport: str = "auto"  # "barrier": one long barrier stage + ZeroMQ; "jobs": a Spark job a
    #                          round; "auto": barrier where it can run; "inprocess": no Spark (studies)
    reduce: str = "driver"  # barrier stage: "driver" receives every worker's sums; "chain": the workers
    #                         add them along a chain, the driver receives one vector (same bits; docs/scaling.md)
    round_timeout: float = (
        300.0  # seconds a round (or, if longer than 60, the stage's start) may take before its worker counts as lost
    )
    slot_wait: float = 60.0  # seconds a cluster may take to register W task slots (at the start, after a loss)
    connect_timeout: float = 60.0  # seconds a Spark Connect server may not answer before the run ends (one line)
    channel_port: int = 0  # the driver's port for the round channel; 0: any free port
    channel_host: str = ""  # the address executors reach the driver (a Connect client) at; "": found
    # --- bookkeeping ---
    checkpoint_every_rounds: int = 0  # 0: checkpoint at the end of each epoch only
    max_rounds: int = 0  # 0: no limit; else stop after this many rounds (tests, smoke runs)
    log_every_rounds: int = 0  # 0: about ten progress lines an epoch
    tracking: bool = False  # log the run to MLflow (`train --mlflow`; the `mlflow` extra; dist_mnist.tracking)

    def __post_init__(self) -> None:
        _validate(self)

    def resolved(self, default_workers: int) -> TrainConfig:
        """The config as it will run: every 0-means-auto setting (AUTO_KEYS) replaced by its choice."""
        return dataclasses.replace(self, workers=self.workers or max(1, default_workers))

    def to_dict(self) -> dict:
        """Plain JSON-able dict of every setting."""
        d = dataclasses.asdict(self)
        d["layer_sizes"] = list(self.layer_sizes)
        return d


_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


def _validate(c: TrainConfig) -> None:
    for key in ("learning_rate", "outer_learning_rate", "batch_size", "epochs", "averaging_frequency"):
        v = getattr(c, key)
        if not (math.isfinite(v) and v > 0):
            raise ValueError(f"{key} must be a finite number > 0, got {v!r}")
    for key in ("momentum", "outer_momentum", "l2"):
        v = getattr(c, key)
        if not (math.isfinite(v) and 0 <= v < (1 if "momentum" in key else math.inf)):
            raise ValueError(f"{key} must be finite and >= 0{' and < 1' if 'momentum' in key else ''}, got {v!r}")
    for key in ("slot_wait", "connect_timeout"):
        if not (math.isfinite(getattr(c, key)) and getattr(c, key) >= 0):
            raise ValueError(f"{key} must be a finite number of seconds >= 0, got {getattr(c, key)!r}")
    if not (math.isfinite(c.round_timeout) and c.round_timeout > 0):
        raise ValueError(f"round_timeout must be a finite number of seconds > 0, got {c.round_timeout!r}")
    if not 0 <= c.channel_port <= 65535:
        raise ValueError(f"channel_port must be 0 (any free port) or a port number, got {c.channel_port}")
    for key in ("seed", "checkpoint_every_rounds", "max_rounds", "log_every_rounds", "workers"):
        if getattr(c, key) < 0:
            raise ValueError(f"{key} must be >= 0, got {getattr(c, key)}")
    for key, allowed in (
        ("mode", MODES),
        ("updater", UPDATERS),
        ("outer_updater", OUTER_UPDATERS),
        ("transport", TRANSPORTS),
        ("reduce", REDUCES),
        ("lr_scaling", LR_SCALINGS),
        ("activation", ("relu",)),
        ("weight_init", ("xavier",)),
    ):
        if getattr(c, key) not in allowed:
            raise ValueError(f"{key} must be one of {list(allowed)}, got {getattr(c, key)!r}")
    sizes = c.layer_sizes
    if len(sizes) < 2 or any(s <= 0 for s in sizes):
        raise ValueError(f"layer_sizes must be at least two positive sizes, got {list(sizes)}")
    if sizes[-1] < 2:
        raise ValueError(f"layer_sizes must end with at least 2 classes, got {list(sizes)}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _coerce(key: str, value: object, where: str) -> object:
    """Check `value` against the declared type of `key` (an int is a float too; a list, a tuple)."""
    kind = str(_FIELDS[key].type)  # the annotation's text: annotations are postponed here
    if kind == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind == "tuple[int, ...]" and isinstance(value, (list, tuple)) and all(_is_int(v) for v in value):
        return tuple(value)
    if (
        (kind == "bool" and isinstance(value, bool))
        or (kind == "int" and _is_int(value))
        or (kind == "str" and isinstance(value, str))
    ):
        return value
    raise ValueError(f"{where}: {key} must be {kind.replace('tuple[int, ...]', 'a list of ints')}, got {value!r}")


def _check_key(key: str, where: str) -> str:
    """The setting `key` names (its current name, where it was renamed); ValueError for an unknown key."""
    key = RENAMED.get(key, key)
    if key not in _FIELDS:
        near = difflib.get_close_matches(key, _FIELDS, n=1)
        hint = f"; did you mean {near[0]!r}?" if near else f"; valid keys: {', '.join(_FIELDS)}"
        raise ValueError(f"{where}: unknown key {key!r}{hint}")
    return key


def parse_set(item: str) -> tuple[str, object]:
    """'key=value' with a TOML value (bare words are strings)."""
    if "=" not in item:
        raise ValueError(f"--set {item!r}: expected key=value")
    key, raw = (s.strip() for s in item.split("=", 1))
    if "\n" in raw or "\r" in raw:  # a second line would be a second key = value
        raise ValueError(f"--set {key}: a value is one TOML value on one line, got {raw!r}")
    try:
        table = tomllib.loads(f"v = {raw}")
    except tomllib.TOMLDecodeError:
        table = {"v": raw}  # a bare word: a string
    if set(table) != {"v"}:
        raise ValueError(f"--set {key}: a value is one TOML value, got {raw!r}")
    value = table["v"]
    if raw.lower() in ("nan", "inf", "+inf", "-inf"):
        value = float(raw)
    return key, value


def load_config(path: str | os.PathLike | None = None, sets: Sequence[str] = ()) -> TrainConfig:
    """Defaults, then the TOML file at `path`, then each --set key=value."""
    values: dict[str, Any] = {}  # each checked by _coerce against its field's type
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: config file not found")
        try:
            table = tomllib.loads(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise ValueError(f"{path}: not a TOML file (not UTF-8 text); --config takes a TOML file") from None
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"{path}: not a TOML file ({e}); --config takes a TOML file") from None
        for given, value in table.items():
            key = _check_key(given, str(path))
            values[key] = _coerce(key, value, str(path))
    for item in sets:
        given, value = parse_set(item)
        key = _check_key(given, "--set")
        values[key] = _coerce(key, value, "--set")
    return TrainConfig(**values)


def config_from_dict(d: dict, where: str) -> TrainConfig:
    """A config saved in a checkpoint or model.json (by any version: renamed keys are read by their new names)."""
    keys = {key: _check_key(key, where) for key in d}
    values: dict[str, Any] = {keys[k]: _coerce(keys[k], v, where) for k, v in d.items()}  # checked by _coerce
    return TrainConfig(**values)


def differing_keys(saved: TrainConfig, requested: TrainConfig) -> list[str]:
    """Names of the settings that change the model where a saved (resolved) config and a
    requested one differ; a requested 0 for an AUTO_KEYS setting matches any saved choice."""
    return [
        k
        for k in _FIELDS
        if k not in RUN_SETTINGS
        and getattr(saved, k) != getattr(requested, k)
        and not (k in AUTO_KEYS and getattr(requested, k) == 0)
    ]


def with_saved_choices(requested: TrainConfig, saved: TrainConfig) -> TrainConfig:
    """The saved run's config, with the requested run settings (transport, ...) applied."""
    return dataclasses.replace(saved, **{k: getattr(requested, k) for k in RUN_SETTINGS})
