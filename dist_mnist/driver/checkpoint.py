"""What a checkpoint holds (TrainState: arrays and position) and its file, in one place.

RUN.partial/checkpoint.npz is one .npz renamed into place, so the arrays and the counters
can never disagree: `param/K` (the parameters), `state/K` (the updater state), `outer/K`
(average mode's outer velocity) and `meta` (JSON bytes: the position, the resolved config
and, for a tracked run, the tracker's run id). On --resume it is checked as a model is:
every array float32, finite and of the shape the config gives, and counters that fit the run.
No Spark here.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dist_mnist.config import TrainConfig, config_from_dict, differing_keys, with_saved_choices
from dist_mnist.driver.timings import RoundTimings
from dist_mnist.files.atomic import atomic_write_npz, parse_json_object
from dist_mnist.files.model import check_arrays, model_bytes, param_shapes
from dist_mnist.files.npz import NPZ_LIMIT, NPZ_SLACK, read_npz
from dist_mnist.modes import TrainingArrays, has_outer_step, updater_of
from dist_mnist.nn.model import Params

CHECKPOINT_NPZ = "checkpoint.npz"
PARAM, STATE, OUTER = "param/", "state/", "outer/"
LEGACY_OUTER = "state/outer/"  # where checkpoints written before 2026-12 kept the outer velocity
META_BYTES = 64 << 20  # a checkpoint's JSON counters and history (a few bytes a round)
TRACKING_RUN_ID = "tracking_run_id"  # in meta where the run is tracked (absent from older checkpoints)


@dataclass
class Position:
    """Where training is; saved in every checkpoint, so a resumed run continues exactly."""

    epoch: int = 0  # epochs finished
    round_in_epoch: int = 0  # rounds of the current epoch finished
    global_round: int = 0
    epoch_loss: float = 0.0  # the current epoch's running loss sum, examples and seconds
    epoch_seen: int = 0
    epoch_seconds: float = 0.0
    history: list[dict] = field(default_factory=list)  # one record per finished epoch
    timings: RoundTimings = field(default_factory=RoundTimings)

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "timings": self.timings.to_dict()}

    @classmethod
    def from_dict(cls, meta: dict) -> Position:
        values = {f.name: meta[f.name] for f in dataclasses.fields(cls) if f.name in meta}
        values["timings"] = RoundTimings.from_dict(meta.get("timings") or {})
        return cls(**values)


@dataclass
class TrainState:
    """What a checkpoint holds: the driver's arrays (with their updaters) and the position."""

    arrays: TrainingArrays
    pos: Position
    tracking_run_id: str | None = None  # the experiment tracker's run (MLflow's run id), continued on --resume

    @classmethod
    def new(cls, config: TrainConfig) -> TrainState:
        """Xavier-initialised parameters, zero updater state and outer velocity, position 0."""
        return cls(TrainingArrays.new(config), Position())

    def save(self, run_dir: Path, config: TrainConfig) -> None:
        """RUN.partial/checkpoint.npz, written atomically."""
        a = self.arrays
        meta = {**self.pos.to_dict(), "config": config.to_dict()}
        if self.tracking_run_id is not None:
            meta[TRACKING_RUN_ID] = self.tracking_run_id
        write_arrays(run_dir, a.params, a.state, a.outer_v, meta)

    @classmethod
    def resume(cls, run_dir: Path, config: TrainConfig) -> tuple[TrainConfig, TrainState]:
        """The checkpoint in run_dir, read and checked against `config` once: the run's config (the
        saved one, with `config`'s run settings: transport, ...) and the state it goes on from."""
        params, state, outer_v, meta = read_checked(run_dir, config)
        saved = config_from_dict(meta["config"], str(Path(run_dir) / CHECKPOINT_NPZ))
        config = with_saved_choices(config, saved)
        arrays = TrainingArrays.of(config, params, state, outer_v)
        return config, cls(arrays, Position.from_dict(meta), meta.get(TRACKING_RUN_ID))


def write_arrays(run_dir: Path, params: Params, state: Params, outer_v: Params, meta: dict) -> None:
    """One checkpoint.npz of these arrays and the JSON meta."""
    arrays = {PARAM + k: v for k, v in params.items()}
    arrays.update({STATE + k: v for k, v in state.items()})
    arrays.update({OUTER + k: v for k, v in outer_v.items()})
    arrays["meta"] = np.frombuffer(json.dumps(meta, allow_nan=False).encode(), dtype=np.uint8)
    atomic_write_npz(Path(run_dir) / CHECKPOINT_NPZ, arrays)


def read_arrays(run_dir: Path, max_bytes: int = NPZ_LIMIT) -> tuple[Params, Params, Params, dict]:
    """(params, updater state, outer velocity, meta) of the checkpoint in run_dir; only its format is checked."""
    path = Path(run_dir) / CHECKPOINT_NPZ
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir}: no checkpoint to resume from ({CHECKPOINT_NPZ} is missing)")
    arrays = read_npz(path, max_bytes)
    meta = arrays.pop("meta", None)
    if meta is None or meta.dtype != np.uint8 or meta.ndim != 1:
        raise ValueError(f"{path}: not a dist-mnist checkpoint (no 'meta' array of JSON bytes)")
    parts: dict[str, Params] = {PARAM: {}, STATE: {}, OUTER: {}}
    for key, value in arrays.items():
        prefix = OUTER if key.startswith((OUTER, LEGACY_OUTER)) else next((p for p in parts if key.startswith(p)), None)
        if prefix is None:
            raise ValueError(f"{path}: unexpected array {key!r} in a checkpoint")
        parts[prefix][key.rsplit("/", 1)[1]] = value
    return parts[PARAM], parts[STATE], parts[OUTER], parse_json_object(meta.tobytes(), f"{path} (array meta)")


def read_checked(run_dir: Path, config: TrainConfig) -> tuple[Params, Params, Params, dict]:
    """read_arrays, and every array and counter checked against the run's config."""
    where = Path(run_dir) / CHECKPOINT_NPZ
    # parameters, updater state and outer velocity: at most three models' worth, and the counters
    params, state, outer_v, meta = read_arrays(run_dir, 3 * model_bytes(config.layer_sizes) + META_BYTES + NPZ_SLACK)
    check_same_config(meta, config, where)
    shapes = param_shapes(config.layer_sizes)
    layers = f"layers {list(config.layer_sizes)}"
    check_arrays(params, shapes, str(where), layers, PARAM)
    state_shapes = {k: v.shape for k, v in updater_of(config).init_state(params).items()}
    check_arrays(state, state_shapes, str(where), f"{layers} and updater {config.updater!r}", STATE)
    outer_shapes = shapes if has_outer_step(config) else {}
    check_arrays(outer_v, outer_shapes, str(where), f"{layers} and outer_updater {config.outer_updater!r}", OUTER)
    check_counters(meta, config, where)
    return params, state, outer_v, meta


def check_same_config(meta: dict, config: TrainConfig, where: Path) -> None:
    """--resume continues the same run: refuse a config that differs, naming the keys."""
    if not isinstance(meta.get("config"), dict):
        raise ValueError(f"{where}: not a dist-mnist checkpoint (its meta has no 'config' object)")
    saved = config_from_dict(meta["config"], str(where))
    diff = differing_keys(saved, config)
    if diff:
        detail = ", ".join(f"{k}: {getattr(saved, k)!r} -> {getattr(config, k)!r}" for k in diff)
        raise ValueError(f"--resume: config differs from the checkpoint's ({where}) in {detail}")


def check_counters(meta: dict, config: TrainConfig, where: Path) -> None:
    """A checkpoint's position: non-negative counts, no more epochs than the run has."""
    for key in ("epoch", "round_in_epoch", "global_round", "epoch_seen"):
        value = meta.get(key)
        if not (type(value) is int and value >= 0):
            raise ValueError(f"{where}: counter {key!r} must be a non-negative integer, got {value!r}")
    for key in ("epoch_loss", "epoch_seconds"):
        value = meta.get(key)
        # JSON's numbers (a bool is an int to Python, not to JSON)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{where}: {key!r} must be a finite number >= 0, got {value!r}")
    if meta["epoch"] > config.epochs or (meta["epoch"] == config.epochs and meta["round_in_epoch"]):
        raise ValueError(
            f"{where}: at epoch {meta['epoch']} round {meta['round_in_epoch']}, past the run's {config.epochs} epochs"
        )
    history = meta.get("history")
    if not (isinstance(history, list) and len(history) == meta["epoch"] and all(isinstance(h, dict) for h in history)):
        raise ValueError(f"{where}: 'history' must hold one record per finished epoch ({meta['epoch']})")
    if not (isinstance(meta.get("timings"), dict) and type(meta["timings"].get("rounds")) is int):
        raise ValueError(f"{where}: 'timings' must be an object with a count of 'rounds'")
    run_id = meta.get(TRACKING_RUN_ID)
    if run_id is not None and not (isinstance(run_id, str) and 0 < len(run_id) <= 256 and run_id.isprintable()):
        raise ValueError(f"{where}: {TRACKING_RUN_ID!r} must be a run id (a short string), got {run_id!r}")


def check_position(pos: Position, per_epoch: int, where: Path) -> None:
    """A resumed position against the run's rounds an epoch (known once the data is)."""
    if pos.round_in_epoch >= per_epoch or pos.global_round != pos.epoch * per_epoch + pos.round_in_epoch:
        raise ValueError(
            f"{where}: round {pos.round_in_epoch} of epoch {pos.epoch} (round {pos.global_round} overall) does not "
            f"fit {per_epoch} rounds an epoch; was the data changed?"
        )
