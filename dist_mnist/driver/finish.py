"""The end of a run: the final evaluation's scores, the files a run writes, the swap into place,
and the TrainResult its caller gets (so nobody reads the files back). No Spark here.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dist_mnist.data.features import FeatureKind
from dist_mnist.driver.loop import EpochListener
from dist_mnist.driver.prepare import Prepared
from dist_mnist.driver.runs import finish_run_dir, model_meta, public_scores, write_outputs
from dist_mnist.hints import Log
from dist_mnist.metrics import scores, stats_text
from dist_mnist.modes import round_input
from dist_mnist.nn.model import Params
from dist_mnist.rounds import Plan, RoundSpec
from dist_mnist.transport import Transport


@dataclass(frozen=True)
class TrainResult:
    """What a finished run produced: where, the model, its scores and how the run went."""

    run_dir: Path
    params: Params  # W0, b0, ... float32, as model.npz holds them
    model_meta: dict  # model.json's content
    metrics: dict  # metrics.json's content: "epochs" (one record each), "rounds" (timings), "final"
    scores: dict | None  # the final test scores, per class too (None without a test set)
    confusion: np.ndarray | None  # int64 (C, C) [actual][predicted] on the test set
    kept: tuple[str, ...] = ()  # what RUN held that train did not write, carried over

    @property
    def history(self) -> list[dict]:
        """One record an epoch: epoch, train_loss, wall_seconds, samples_per_second, test_accuracy."""
        return self.metrics["epochs"]

    def stats(self) -> str | None:
        """DL4J's Evaluation.stats() text of the final evaluation (evaluation.txt), or None."""
        return None if self.confusion is None else stats_text(self.confusion)


def final_counts(plan: Plan, run: Prepared, transport: Transport) -> np.ndarray | None:
    """The final evaluation: one evaluation-only round on the workers' test shards (None without a test set)."""
    if not run.has_test:
        return None
    arrays, pos = run.state.arrays, run.state.pos
    spec = RoundSpec(pos.epoch, 0, train=False, evaluate=True)
    return transport.run_round(round_input(plan, arrays.params, arrays.state), spec).confusion


def finish(
    run: Prepared,
    plan: Plan,
    counts: np.ndarray | None,
    pending: int | None,
    rounds: dict,
    spark_version: str | None,
    log: Log,
    on_epoch: EpochListener | None = None,
) -> TrainResult:
    """Write the run's files into its partial directory and swap it into place; the result.

    pending: the epoch whose test accuracy is the final evaluation's; rounds: what the transport
    reports for metrics.json's "rounds" block (its name, the channel's counts).
    """
    pos, config = run.state.pos, run.config
    final = scores(counts) if counts is not None else None
    if final is not None:
        if pending is not None:
            pos.history[pending]["test_accuracy"] = final["accuracy"]
            if on_epoch:
                on_epoch(pos.history[pending])
        log(f"final test accuracy {final['accuracy']:.4f} after {pos.global_round} rounds, {run.phases.elapsed():.1f}s")
    else:
        log(f"trained {pos.global_round} rounds in {run.phases.elapsed():.1f}s (no test set)")
    run.phases.mark("final_evaluation")
    meta = model_meta(config, run.train_split.feature, run.data_path, final, spark_version)
    metrics = {"epochs": pos.history, "rounds": rounds_block(run, rounds), "final": public_scores(final)}
    write_outputs(run.partial, run.state.arrays.params, meta, metrics, final, counts)
    kept = finish_run_dir(run.partial, run.run_dir)
    if kept:
        log(
            f"kept in {run.run_dir} what train did not write: {', '.join(kept)} (made before this run: "
            f"remake any made from the old model, e.g. dist-mnist export)"
        )
    run.phases.mark("write")  # after metrics.json: printed, not saved
    log(run.phases.line())
    return TrainResult(run.run_dir, run.state.arrays.params, meta, metrics, final, counts, tuple(kept))


def rounds_block(run: Prepared, transport_facts: dict) -> dict:
    """metrics.json's "rounds": the time breakdown, the transport and its channel's counts, the
    phases, and the memory figures."""
    block = run.state.pos.timings.summary()
    block.update(transport_facts)  # transport: its name; dropped_messages, refused_connections: by reason
    block["phases_seconds"] = {k: round(v, 3) for k, v in run.phases.seconds.items()}
    # PSS of the shard file mappings summed over the Python workers of the last round, and the
    # uint8 size of the data they hold (train + test). Only the mapped files: it can never exceed
    # them. What the workers hold in all (Arrow buffers, float copies, NumPy) is measured from
    # outside by benchmarks/memory.py.
    block["shard_memory_bytes"] = run.state.pos.timings.shard_bytes
    itemsize = 1 if run.train_split.feature is FeatureKind.IMAGE else 4  # uint8 pixels or float32 features
    row_bytes = run.config.layer_sizes[0] * itemsize + 1  # and a label
    block["data_uint8_bytes"] = (run.train_split.n_rows + run.test_split.n_rows) * row_bytes
    # the driver's Python process only (RUSAGE_SELF): the JVM it talks to is a separate process,
    # measured by benchmarks/memory.py
    block["driver_peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return block
