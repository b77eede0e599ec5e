"""The persistent transport: one barrier stage holds a task per worker for the whole run.

Each task loads its shard once, connects one ZeroMQ socket to the driver (dist_mnist.channel)
and serves rounds until the driver says stop: a round costs the channel's milliseconds, not
a Spark job. On a local master the channel is a Unix socket of this user; on a cluster it is
TCP encrypted with CURVE, whose per-run keys travel in the task's closure, or it does not run
(barrier_unavailable says why). A lost, failed or hung worker raises WorkerLost from run_round; the caller
relaunches the stage (a new generation) or falls back to one Spark job a round, and redoes
the round from the driver's state, so the model is the same as without the fault.
"""

from __future__ import annotations

import os
import queue
import threading
import time

import numpy as np

import zmq

from dist_mnist.channel import NO_CURVE, Endpoint, RoundServer, serve_rounds
from dist_mnist.rounds import Combiner, Plan, RoundResult, RoundSpec, compute_round
from dist_mnist.spark.shard_cache import drop_shards, get_shard, release_shard, resident_bytes
from dist_mnist.transport import WorkerLost
from dist_mnist.worker_errors import WorkerError


ENCRYPTION_SETTINGS = ("spark.network.crypto.enabled", "spark.ssl.enabled", "spark.io.encryption.enabled")


def channel_kind(sc) -> str:
    """'ipc' on a local master (every worker is a process of this user on this host), else 'tcp'."""
    return "ipc" if sc.master.startswith("local") else "tcp"


def encryption_asked(sc) -> list[str]:
    """The settings by which the cluster asks for encrypted traffic."""
    conf = sc.getConf()
    return [k for k in ENCRYPTION_SETTINGS if conf.get(k, "false").strip().lower() == "true"]


def describe_channel(sc, address: str) -> str:
    """How rounds travel, for the transport line."""
    if address.startswith("ipc://"):
        return f"over a Unix socket, same user only (nothing crosses a network), at {address}"
    asked = encryption_asked(sc)
    return f"(CURVE-encrypted{'; the cluster asks for encryption: ' + ', '.join(asked) if asked else ''}) at {address}"


def barrier_unavailable(sc, workers: int) -> str | None:
    """Why a barrier stage of `workers` tasks cannot run now, or None if it can."""
    if channel_kind(sc) == "tcp" and not zmq.has("curve"):
        asked = encryption_asked(sc)
        return NO_CURVE + (f" (the cluster asks for encryption: {', '.join(asked)})" if asked else "")
    conf = sc.getConf()
    if conf.get("spark.dynamicAllocation.enabled", "false").lower() == "true":
        return "dynamic allocation is on, and barrier stages refuse it"
    slots = free_slots(sc)
    if slots < workers:
        return f"{workers} workers need {workers} task slots at once, the application has {slots}"
    return None


def free_slots(sc) -> int:
    """Tasks the application can run at once now (cores / spark.task.cpus over live executors)."""
    jsc = sc._jsc.sc()
    return int(jsc.maxNumConcurrentTasks(jsc.resourceProfileManager().defaultResourceProfile()))


def make_task_fn(plan: Plan, endpoint: Endpoint, generation: int):
    """The barrier task: worker w connects, then serves rounds; its shard is loaded in the first
    round, so a data error reaches the driver as that round's error, not as a failed stage."""

    def task(_):
        from pyspark import BarrierTaskContext

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
            return RoundResult(r.sums, r.loss, r.n, r.seconds, resident_bytes() if spec.evaluate else 0, r.confusion)

        try:
            serve_rounds(endpoint, hello, compute)
        finally:  # the run's shard files go with the task (the arrays stay mapped until it ends)
            for split in held:
                release_shard(*plan.reader_args(getattr(plan, split)[w]), scope=plan.scope)
        yield w

    return task


class BarrierTransport:
    """One barrier stage of W long-running tasks; rounds over ZeroMQ.

    Raises WorkerLost when the stage cannot start within `timeout` seconds, and from
    run_round when a worker's stream breaks, its task fails or a round exceeds `timeout`.
    """

    name = "barrier"

    def __init__(self, sc, plan: Plan, timeout: float, port: int = 0, log=print, make_task=make_task_fn):
        self.sc, self.plan, self.timeout, self.log = sc, plan, timeout, log
        self.make_task = make_task  # (plan, endpoint, generation) -> the barrier task function
        host = sc.getConf().get("spark.driver.host", "127.0.0.1")
        largest = plan.n_params * (2 if plan.ships_state else 1)  # the round's vector, floats
        self.server = RoundServer(channel_kind(sc), host, port, plan.workers, largest, plan.n_classes, log)
        self.address = self.server.endpoint.address
        self.channel = describe_channel(sc, self.address)
        self.generation = 0
        self.job: threading.Thread | None = None
        self.job_events: queue.Queue = queue.Queue()  # the stage's job failed: (generation, error)
        self.timings: dict[str, float] = {}
        self.hosts: dict[int, str] = {}  # worker -> "host:port, pid N", for messages
        self.pids: dict[int, int] = {}
        try:
            self.launch()
        except BaseException:  # the caller falls back to Spark jobs: free the socket (and a Unix socket's directory)
            self.close()
            raise

    def launch(self, timeout: float | None = None) -> None:
        """Start a new generation of the barrier stage and wait (at most `timeout` seconds, default
        the round timeout) until every worker has connected."""
        self._cancel()
        self.generation += 1
        self.server.start_generation(self.generation)
        group = f"dist-mnist-rounds-{self.server.run}-{self.generation}"
        rdd = self.sc.parallelize(range(self.plan.workers), self.plan.workers).barrier()
        fn = self.make_task(self.plan, self.server.endpoint, self.generation)

        def run_job():
            self.sc.setJobGroup(group, "dist-mnist: persistent round transport", interruptOnCancel=True)
            try:
                rdd.mapPartitions(fn).collect()
            except BaseException as e:  # noqa: BLE001 - reported by the waiting driver
                self.job_events.put((generation, e))

        generation = self.generation

        from pyspark import InheritableThread

        self.group = group
        self.job = InheritableThread(target=run_job, daemon=True, name=f"dist-mnist-barrier-{self.generation}")
        self.job.start()
        deadline, waiting = time.monotonic() + (timeout or self.timeout), set(range(self.plan.workers))
        while waiting:
            kind, gen, w, info = self._next_event(deadline, f"workers {sorted(waiting)} did not connect")
            if kind == "hello":
                waiting.discard(w)
                self.hosts[w], self.pids[w] = f"{info.get('host', '?')}, pid {info.get('pid', '?')}", info.get("pid")
            else:
                raise WorkerLost(self._describe(kind, w, info, "while starting"))

    def run_round(self, flat: np.ndarray, spec: RoundSpec) -> RoundResult:
        t0 = time.perf_counter()
        when = f"in epoch {spec.epoch + 1} round {spec.round_in_epoch + 1}"
        self.server.begin_round()
        for w in range(self.plan.workers):
            try:
                self.server.send(w, flat, spec)
            except zmq.ZMQError as e:
                raise WorkerLost(f"worker {w} (on {self.hosts.get(w, '?')}) is not connected {when} ({e})") from None
        t1 = time.perf_counter()
        results: dict[int, RoundResult] = {}
        deadline = time.monotonic() + self.timeout
        total, nxt = Combiner(), 0
        while nxt < self.plan.workers:
            missing = sorted(set(range(nxt, self.plan.workers)) - set(results))
            kind, gen, w, info = self._next_event(
                deadline, f"worker(s) {missing} timed out after {self.timeout:g} s {when}"
            )
            if kind == "error":  # our own error on the worker (bad data): a user error, not a fault
                raise WorkerError(info["type"], info["error"]).exception()
            if kind != "result":
                raise WorkerLost(self._describe(kind, w, info, when))
            results[w] = info
            while nxt in results:  # combine strictly in worker order, as results arrive
                total.add(results.pop(nxt))
                nxt += 1
        self.timings = {"send": t1 - t0, "job": time.perf_counter() - t1}
        return total.result()

    def _next_event(self, deadline: float, timeout_message: str):
        """The next event of this generation: a worker's message, or its job's failure."""
        while True:
            try:
                generation, error = self.job_events.get_nowait()
                if generation == self.generation:
                    return "job", generation, -1, error
                continue
            except queue.Empty:
                pass
            left = deadline - time.monotonic()
            if left <= 0:
                raise WorkerLost(timeout_message)
            event = self.server.poll(min(left, 0.05))
            if event is not None:
                return event

    def _describe(self, kind: str, w: int, info, when: str) -> str:
        if kind == "job":
            first = str(info).strip().splitlines()[0] if str(info).strip() else type(info).__name__
            return f"the barrier stage failed {when}: {first[:300]}"
        # a hello mid-run: Spark relaunched the task of worker w, so its previous one is gone
        return f"worker {w} (on {self.hosts.get(w, '?')}) was lost {when}: Spark restarted its task"

    def _cancel(self) -> None:
        """End the current generation: tell its workers to stop, cancel its job, wait for it."""
        if self.job is None:
            return
        self.server.stop_workers()
        self.server.start_generation(-1)  # late (retried) tasks are told to stop as they say hello
        deadline = time.monotonic() + 10
        while self.job.is_alive() and time.monotonic() < deadline:
            self.server.poll(0.05)  # answer late hellos
        self.job.join(timeout=0.1)
        if self.job.is_alive():
            self.sc.cancelJobGroup(self.group)
            self.job.join(timeout=60)
        self.job = None

    def channel_counts(self) -> dict[str, dict[str, int]]:
        """Messages dropped (not answering the round in flight) and connections refused, by reason."""
        return {"dropped_messages": dict(self.server.dropped), "refused_connections": self.server.refused()}

    def close(self) -> None:
        self._cancel()
        self.server.shutdown()
        if self.plan.scope:
            drop_shards(self.plan.scope)  # what a lost task left, where the driver's directory is the executors'
