"""What the persistent barrier stage runs on the executors: a round-serving task, and the reachability probe.

Built by factories from plain values (the Plan and the channel's Endpoint), so a closure never
captures a session or the transport (pyspark's TorchDistributor does the same)."""

from __future__ import annotations

import os

import numpy as np

from dist_mnist.channel.chain import PeerLinks
from dist_mnist.channel.endpoint import Endpoint
from dist_mnist.channel.worker import serve_rounds
from dist_mnist.rounds import Plan, RoundResult, RoundSpec, compute_round
from dist_mnist.spark.shard_cache import get_shard, release_shard, shard_bytes


def make_task_fn(plan: Plan, endpoint: Endpoint, generation: int):
    """The barrier task: worker w connects, then serves rounds; its shard is loaded in the first
    round, so a data error reaches the driver as that round's error, not as a failed stage."""

    def task(batches):
        import pyarrow as pa
        from pyspark import BarrierTaskContext

        for _ in batches:  # the input rows only say how many tasks there are
            pass
        ctx = BarrierTaskContext.get()
        w = ctx.partitionId()
        hello = {
            "generation": generation,
            "worker": w,
            "host": ctx.getTaskInfos()[w].address,
            "pid": os.getpid(),
            "attempt": ctx.attemptNumber(),
        }

        held = {}  # the task holds its shards after the first round: no lookup per round

        def rows(split: str):
            if split not in held:
                held[split] = get_shard(*plan.reader_args(getattr(plan, split)[w]), scope=plan.scope)
            return held[split]

        def compute(flat: np.ndarray, spec: RoundSpec) -> RoundResult:
            r = compute_round(plan, w, rows("train"), lambda: rows("test"), flat, spec)
            return RoundResult(r.sums, r.loss, r.n, r.seconds, shard_bytes() if spec.evaluate else 0, r.confusion)

        links = None
        try:
            if plan.config.reduce == "chain":  # the links to the neighbours, their addresses swapped by allGather
                host = hello["host"].rsplit(":", 1)[0]
                links = PeerLinks(endpoint, w, plan.workers, host, ctx.allGather)
            serve_rounds(endpoint, hello, compute, links.deliver if links else None)
        finally:  # the run's shard files go with the task (the arrays stay mapped until it ends)
            if links is not None:
                links.close()
            for split in held:
                release_shard(*plan.reader_args(getattr(plan, split)[w]), scope=plan.scope)
        yield pa.RecordBatch.from_pydict({"w": pa.array([w], pa.int32())})

    return task


def make_probe_fn(endpoint: Endpoint, seconds: float):
    """One task that says whether it reached the driver's end of the round channel (see channel.probe)."""

    def run(batches):
        import pyarrow as pa

        from dist_mnist.channel.worker import probe

        for _ in batches:
            pass
        try:
            ok, detail = probe(endpoint, seconds), f"no answer in {seconds:g} s"
        except Exception as e:  # noqa: BLE001 - reported to the driver as the reason
            ok, detail = False, f"{type(e).__name__}: {e}"
        yield pa.RecordBatch.from_pydict({"ok": [ok], "detail": ["" if ok else detail]})

    return run
