"""Everything a run needs before Spark starts: the run directory (locked), the splits, the
config (with a checkpoint's choices), the state to start from. No JVM here: the CLI prepares
before it starts Spark, so bad input fails in a second and nothing is touched.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dist_mnist.config import TrainConfig
from dist_mnist.data.ingest import read_metadata
from dist_mnist.data.shards import plan_shards
from dist_mnist.data.splits import SplitFiles, describe_split
from dist_mnist.driver.checkpoint import CHECKPOINT_NPZ, TrainState, check_position
from dist_mnist.driver.progress import Interrupted, nothing_written
from dist_mnist.driver.runs import (
    check_run_dir,
    check_run_paths,
    discard_unless_checkpointed,
    partial_dir,
    prepare_run_dir,
    with_resume_hint,
)
from dist_mnist.driver.timings import Phases
from dist_mnist.files.atomic import WriteFailed, recover, recover_if_idle
from dist_mnist.files.paths import run_lock
from dist_mnist.modes import memory_needed
from dist_mnist.nn.flat import layout_of
from dist_mnist.nn.model import init_params
from dist_mnist.rounds import Plan
from dist_mnist.transport import ServerLost

GIB = 1 << 30


@dataclass
class Prepared:
    """A run ready to start: where it writes, what it reads, its config and its state."""

    config: TrainConfig  # as requested, with a resumed checkpoint's choices (workers 0: not resolved yet)
    data_path: str
    run_dir: Path
    partial: Path  # RUN.partial: the run's files until it finishes
    train_split: SplitFiles
    test_split: SplitFiles
    state: TrainState
    resumed: bool
    phases: Phases

    @property
    def has_test(self) -> bool:
        return self.test_split.n_rows > 0

    def plan(self, default_workers: int) -> Plan:
        """The run's Plan, W resolved (workers 0: `default_workers`, Spark's parallelism)."""
        self.config = self.config.resolved(default_workers)
        plan = make_plan(self.config, self.train_split, self.test_split)
        if self.resumed:
            check_position(self.state.pos, plan.rounds_per_epoch, self.partial / CHECKPOINT_NPZ)
        return plan


def check_memory(config: TrainConfig, key: str = "layer_sizes", workers: int = 1) -> None:
    """ValueError naming `key` when a run of `config` cannot fit in this machine's available
    memory (the driver's arrays and `workers` workers' copies), before anything is allocated."""
    need, have = memory_needed(config, workers), available_memory()
    if have is not None and need > have:
        sizes = list(config.layer_sizes)
        raise ValueError(
            f"{key} {sizes}: a run of this network needs about {need / GIB:,.1f} GiB (its parameters, "
            f"updater state and buffers, on the driver and a worker), more than the {have / GIB:,.1f} GiB "
            f"this machine has available; choose smaller layers"
        )


def available_memory() -> int | None:
    """The bytes this machine can give without swapping (MemAvailable), or None where it cannot tell."""
    try:
        with open("/proc/meminfo") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None


def make_plan(config: TrainConfig, train_split: SplitFiles, test_split: SplitFiles) -> Plan:
    """Shards for config.workers workers (resolved) over both splits, whatever their part files."""
    if config.workers > train_split.n_rows:
        raise ValueError(f"workers {config.workers} exceeds the {train_split.n_rows} training rows")
    return Plan(
        config,
        plan_shards(train_split.files, train_split.rows, config.workers),
        plan_shards(test_split.files, test_split.rows, config.workers),
        layout_of(init_params(list(config.layer_sizes), config.seed)),
        scope=uuid.uuid4().hex[:12],  # names this run's shard files on the executors
    )


@contextmanager
def prepare(
    config: TrainConfig,
    data_dir: str,
    run_dir: str | Path,
    resume: bool = False,
    overwrite: bool = False,
    require_test: bool = True,
) -> Iterator[Prepared]:
    """Lock RUN for the block and yield the Prepared run; nothing is written before the splits check out.

    RUN must lie apart from DATA (refused before anything is touched). A run that stops before
    its first checkpoint leaves no RUN.partial behind; a refused write says how to resume.
    """
    run_dir, data_path = Path(run_dir), str(data_dir).rstrip("/")
    check_memory(config)  # a network that cannot fit: one line, before anything is allocated or written
    check_run_paths(run_dir, data_path)
    if run_dir.is_symlink():  # --out LINK: what it points to is the run directory, and the link stays
        run_dir = Path(os.path.realpath(run_dir))
    recover_if_idle(data_path)  # what a killed ingest left: DATA put back from its old copy
    with run_lock(run_dir):
        recover(run_dir)  # what a train killed while swapping RUN in left
        check_run_dir(run_dir, resume, overwrite)
        state = None
        if resume:  # the saved run's config, with this invocation's run settings (transport, ...)
            config, state = TrainState.resume(partial_dir(run_dir), config)
        train_split, test_split = describe_splits(config, data_path, require_test)
        partial = prepare_run_dir(run_dir, resume)
        prepared = Prepared(
            config,
            data_path,
            run_dir,
            partial,
            train_split,
            test_split,
            state or TrainState.new(config),
            state is not None,
            Phases(),
        )
        try:
            yield prepared
        except WriteFailed as e:  # disk full, no file handles: the last checkpoint is whole
            raise with_resume_hint(e, run_dir) from e
        except ServerLost as e:  # a Spark Connect server gone: the run goes on from its checkpoint, elsewhere
            kept = not discard_unless_checkpointed(partial) and (partial / CHECKPOINT_NPZ).is_file()
            where = f"the last checkpoint is in {partial} (resume with --resume)" if kept else "nothing was written"
            raise ServerLost(f"{e}; {where}") from None
        except BaseException as e:
            # a run stopped before its first checkpoint leaves no RUN.partial that --resume would refuse
            # (discarded first, whatever stopped it)
            discarded = discard_unless_checkpointed(partial)
            said_so = isinstance(e, Interrupted) and e.checkpoint is None  # already "nothing was written"
            if discarded and isinstance(e, KeyboardInterrupt) and not said_so:
                # before the rounds (importing pyspark, say) it is the message every earlier Ctrl-C gets
                started = "transport_start" in prepared.phases.seconds
                raise nothing_written("the first checkpoint" if started else "training started", started) from None
            raise


def describe_splits(config: TrainConfig, data_path: str, require_test: bool) -> tuple[SplitFiles, SplitFiles]:
    """DATA/train and DATA/test from their Parquet footers, checked against the config's network."""
    train_split = describe_split(data_path + "/train")
    test_split = describe_split(data_path + "/test", allow_empty=not require_test)
    check_layers(config, read_metadata(data_path), data_path)
    if config.batch_size > train_split.n_rows:
        raise ValueError(f"batch_size {config.batch_size} is larger than the {train_split.n_rows} training rows")
    return train_split, test_split


def check_layers(config: TrainConfig, metadata: dict, where: str) -> None:
    """The network's inputs and classes against what DATA/metadata.json says the data holds
    (where it says: a dataset without it is checked row by row on the workers)."""
    n_in, n_classes = metadata.get("n_in"), metadata.get("n_classes")
    sizes = list(config.layer_sizes)
    if n_in is not None and sizes[0] != n_in:
        raise ValueError(f"layer_sizes {sizes} starts with {sizes[0]} inputs but {where} has {n_in} features a row")
    if n_classes is not None and sizes[-1] < n_classes:
        raise ValueError(f"layer_sizes {sizes} ends with {sizes[-1]} classes but {where} has labels 0-{n_classes - 1}")
