"""How a round travels: one small interface, so the driver's loop never knows which one runs.

- `InProcessTransport` (here, no Spark): the W workers run one after another in the driver
  process, on the same shards. For tests and studies of many workers on one machine.
- `dist_mnist.spark.jobs.RddJobTransport`: one Spark job a round (broadcast, map, collect);
  always works, the fallback and the benchmark baseline.
- `dist_mnist.spark.barrier.BarrierTransport`: one long barrier stage holds a task per worker
  for the whole run, and rounds travel over a ZeroMQ channel: milliseconds a round.
"""

from __future__ import annotations

import contextlib
from typing import Protocol

import numpy as np

from dist_mnist.data.parquet import read_segments
from dist_mnist.rounds import Plan, RoundResult, RoundSpec, combine_all, compute_round


class WorkerLost(RuntimeError):
    """A worker died, hung past the round timeout or could not start; the round can be redone."""


class ServerLost(RuntimeError):
    """The session's server (Spark Connect) stopped answering: the run cannot go on in this session."""


class BarrierUnreachable(WorkerLost):
    """The executors cannot reach this process's end of the round channel (the probe found so)."""


class Transport(Protocol):
    """Runs rounds on the W workers of a Plan; held in a `with` block, which closes it."""

    @property
    def name(self) -> str:
        """What metrics.json and the log call it: "barrier", "jobs", "inprocess", ..."""

    def run_round(self, flat: np.ndarray, spec: RoundSpec) -> RoundResult:
        """Send `flat` and `spec` to every worker; return their results combined in worker order."""

    def summary(self) -> dict:
        """For metrics.json: {"transport": name, ...what else it counted (dropped messages, ...)}."""

    def close(self) -> None:
        """Release the workers (idempotent)."""

    def __enter__(self) -> Transport: ...

    def __exit__(self, *exc: object) -> None: ...


class Closing:
    """A transport's `with` block and default summary: close on the way out, whatever happened."""

    name = "?"

    def close(self) -> None:
        """Release the workers (idempotent)."""

    def summary(self) -> dict:
        return {"transport": self.name}

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load_rows(plan, shard) -> tuple[np.ndarray, np.ndarray]:
    """A shard's rows, read from its Parquet segments."""
    return read_segments(*plan.reader_args(shard))


def _one_blas_thread():
    """Executors run one BLAS thread a task; so do in-process workers, where threadpoolctl is installed."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # then set OPENBLAS_NUM_THREADS=1 for bit-equality with Spark runs
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


class InProcessTransport(Closing):
    """The workers of a Plan, run one after another in this process (no Spark)."""

    name = "inprocess"

    def __init__(self, plan: Plan):
        self.plan = plan
        self.rows = [load_rows(plan, s) for s in plan.train]
        self.test: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _test_rows(self, w: int):
        if w not in self.test:
            self.test[w] = load_rows(self.plan, self.plan.test[w])
        return self.test[w]

    def run_round(self, flat: np.ndarray, spec: RoundSpec) -> RoundResult:
        sent = flat.view()
        sent.setflags(write=False)  # as read-only as a broadcast or a received buffer
        with _one_blas_thread():  # as on an executor: the same GEMM summation order, the same bits
            return combine_all(
                [
                    compute_round(self.plan, w, self.rows[w], lambda w=w: self._test_rows(w), sent, spec)
                    for w in range(self.plan.workers)
                ]
            )

    def close(self) -> None:
        self.rows, self.test = [], {}
