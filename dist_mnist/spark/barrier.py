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

import queue
import threading
import time

import numpy as np
import zmq

from dist_mnist.channel.server import NO_CURVE, RoundServer
from dist_mnist.channel.shm import SharedMemoryGone
from dist_mnist.hints import Log
from dist_mnist.rounds import Combiner, Plan, RoundResult, RoundSpec
from dist_mnist.spark.barrier_tasks import make_probe_fn, make_task_fn
from dist_mnist.spark.cluster import Cluster
from dist_mnist.spark.shard_cache import drop_shards
from dist_mnist.transport import BarrierUnreachable, Closing, WorkerLost
from dist_mnist.worker_errors import WorkerError

START_SECONDS = 60.0  # a stage's start (every worker's hello) may take this long, or round_timeout if longer;
#                     where the free slots are unknown (Connect), this long only: too few would show as a wait
PROBE_SECONDS = 5.0  # an executor's wait for this client's answer to its hello
PROBE_JOB_SECONDS = 60.0  # the probe's one-task job, scheduling included
WATCH_SECONDS = 5.0  # while no worker answers, how often a Connect session's server is asked whether it does


def channel_kind(cluster: Cluster) -> str:
    """'ipc' where every worker is a process of this user on this host, else 'tcp'."""
    return "ipc" if cluster.all_local() else "tcp"


def describe_channel(cluster: Cluster, address: str, shm: str | None = None) -> str:
    """How rounds travel, for the transport line."""
    if address.startswith("ipc://"):
        line = f"over a Unix socket, same user only (nothing crosses a network), at {address}"
        return line + (f"; the vectors through shared memory in {shm} (same user only)" if shm else "")
    asked = cluster.encryption_asked()
    return f"(CURVE-encrypted{'; the cluster asks for encryption: ' + ', '.join(asked) if asked else ''}) at {address}"


def curve_missing(cluster: Cluster) -> bool:
    """Whether the channel would be TCP and this libzmq cannot encrypt it (it then never runs)."""
    return channel_kind(cluster) == "tcp" and not zmq.has("curve")


def barrier_unavailable(cluster: Cluster, workers: int) -> str | None:
    """Why a barrier stage of `workers` tasks cannot run now, or None if it may (under Connect
    the free slots are unknown: the stage's start then tells, within START_SECONDS)."""
    if curve_missing(cluster):
        asked = cluster.encryption_asked()
        return NO_CURVE + (f" (the cluster asks for encryption: {', '.join(asked)})" if asked else "")
    if cluster.dynamic_allocation():
        return "dynamic allocation is on, and barrier stages refuse it"
    slots = cluster.free_slots()
    if slots is not None and slots < workers:
        need = f"{workers} workers need {workers} task slots at once"
        most = cluster.most_slots()
        if most is not None and most < workers:
            return f"{need}, and this cluster offers at most {most}"
        return f"{need}, the application has {slots}"
    return None


class BarrierTransport(Closing):
    """One barrier stage of W long-running tasks; rounds over ZeroMQ.

    Raises WorkerLost when the stage cannot start within `timeout` seconds, and from
    run_round when a worker's stream breaks, its task fails or a round exceeds `timeout`.
    """

    name = "barrier"

    def __init__(
        self, cluster: Cluster, plan: Plan, timeout: float, port: int = 0, log: Log = print, make_task=make_task_fn
    ):
        self.cluster, self.plan, self.timeout, self.log = cluster, plan, timeout, log
        self.make_task = make_task  # (plan, endpoint, generation) -> the barrier task function
        largest = plan.n_params * (2 if plan.ships_state else 1)  # the round's vector, floats
        kind = channel_kind(cluster)
        # a Connect client listens on every interface (CURVE admits only this run's keys) and says
        # which address the executors should use; a classic driver listens where Spark's driver does
        bind = "*" if cluster.connect else None
        self.server = RoundServer(
            kind, cluster.driver_host(), port, plan.workers, largest, plan.n_classes, log, bind_host=bind
        )
        self.address = self.server.endpoint.address
        self.channel = describe_channel(cluster, self.address, self.server.shm)
        self.generation = 0
        self.job: threading.Thread | None = None
        self.job_events: queue.Queue = queue.Queue()  # the stage's job failed: (generation, error)
        self.hosts: dict[int, str] = {}  # worker -> "host:port, pid N", for messages
        self.pids: dict[int, int] = {}
        try:
            if cluster.connect:  # the executors may not reach this client: try, in seconds
                self.probe()
            self.launch()
        except BaseException:  # the caller falls back to Spark jobs: free the socket (and a Unix socket's directory)
            self.close()
            raise

    def launch(self, timeout: float | None = None) -> None:
        """Start a new generation of the barrier stage and wait (at most `timeout` seconds, default
        START_SECONDS or the round timeout if longer) until every worker has connected."""
        self._cancel()
        self.generation += 1
        self.server.start_generation(self.generation)
        tag = f"dist-mnist-rounds-{self.server.run}-{self.generation}"
        W, generation = self.plan.workers, self.generation
        fn = self.make_task(self.plan, self.server.endpoint, generation)
        if self.cluster.connect:  # a DataFrame stage: all a Connect client has
            collect = self.cluster.spark.range(W, numPartitions=W).mapInArrow(fn, "w int", barrier=True).collect
        else:  # an RDD barrier stage: no SQL engine to start (its first query costs seconds), the same tasks
            collect = self.cluster.spark.sparkContext.parallelize(range(W), W).barrier().mapPartitions(fn).collect

        def run_job():
            try:
                self.cluster.run_tagged(tag, collect)
            except BaseException as e:  # noqa: BLE001 - reported by the waiting driver
                self.job_events.put((generation, e))

        self.tag = tag
        self.job = self.cluster.thread(run_job, f"dist-mnist-barrier-{generation}")
        self.job.start()
        if timeout is None:
            timeout = START_SECONDS if self.cluster.free_slots() is None else max(self.timeout, START_SECONDS)
        deadline, waiting = time.monotonic() + timeout, set(range(self.plan.workers))
        while waiting:
            kind, _gen, w, info = self._next_event(deadline, f"workers {sorted(waiting)} did not connect")
            if kind == "hello":
                waiting.discard(w)
                self.hosts[w], self.pids[w] = f"{info.get('host', '?')}, pid {info.get('pid', '?')}", info.get("pid")
            else:
                raise WorkerLost(self._describe(kind, w, info, "while starting"))

    def probe(self) -> None:
        """BarrierUnreachable unless an executor reaches this process's channel (a one-task job says hello)."""
        answers: queue.Queue = queue.Queue()
        stage = self.cluster.spark.range(1, numPartitions=1).mapInArrow(
            make_probe_fn(self.server.endpoint, PROBE_SECONDS), "ok boolean, detail string"
        )

        def run_job():
            try:
                answers.put(stage.collect()[0])
            except BaseException as e:  # noqa: BLE001 - told below
                answers.put(e)

        self.cluster.thread(run_job, "dist-mnist-probe").start()
        deadline, unreachable = time.monotonic() + PROBE_JOB_SECONDS, f"the executors cannot reach {self.address}"
        while time.monotonic() < deadline:
            event = self.server.poll(0.05)
            if event is not None and event[0] == "hello":
                self.server.release(0, 0)
            try:
                answer = answers.get_nowait()
            except queue.Empty:
                continue
            if isinstance(answer, BaseException):
                first = str(answer).strip().splitlines()[0][:200]
                raise BarrierUnreachable(f"{unreachable}: the probe failed ({first})")
            if not answer["ok"]:
                hint = "help: --set channel_host=ADDRESS they reach"
                raise BarrierUnreachable(f"{unreachable} ({answer['detail']}; {hint})")
            return
        raise BarrierUnreachable(f"{unreachable}: the probe did not finish in {PROBE_JOB_SECONDS:g} s")

    def run_round(self, flat: np.ndarray, spec: RoundSpec) -> RoundResult:
        when = f"in epoch {spec.epoch + 1} round {spec.round_in_epoch + 1}"
        self.server.begin_round()
        for w in range(self.plan.workers):
            try:
                self.server.send(w, flat, spec)
            except zmq.ZMQError as e:
                raise WorkerLost(f"worker {w} (on {self.hosts.get(w, '?')}) is not connected {when} ({e})") from None
        # chain: worker W-1 sends the sum of all; else every worker its own, combined here in worker order
        order = [self.plan.workers - 1] if self.plan.config.reduce == "chain" else list(range(self.plan.workers))
        results: dict[int, RoundResult] = {}
        deadline = time.monotonic() + self.timeout
        total, nxt = Combiner(), 0
        while nxt < len(order):
            missing = sorted(set(order[nxt:]) - set(results))
            late = (
                f"the chain's sum (worker {order[0]}'s)" if len(order) < self.plan.workers else f"worker(s) {missing}"
            )
            kind, _gen, w, info = self._next_event(deadline, f"{late} timed out after {self.timeout:g} s {when}")
            if kind == "error" and info["type"] == SharedMemoryGone.__name__:  # relaunched: the frames then
                raise WorkerLost(f"worker {w} cannot open the round's shared files {when} ({info['error']})")
            if kind == "error":  # our own error on the worker (bad data): a user error, not a fault
                raise WorkerError(info["type"], info["error"]).exception()
            if kind != "result":
                raise WorkerLost(self._describe(kind, w, info, when))
            results[w] = info
            while nxt < len(order) and order[nxt] in results:  # combine strictly in worker order, as results arrive
                total.add(results.pop(order[nxt]))
                nxt += 1
        return total.result()

    def _next_event(self, deadline: float, timeout_message: str):
        """The next event of this generation: a worker's message, or its job's failure (ServerLost
        when a Connect session's server stops answering meanwhile)."""
        check_at = time.monotonic() + WATCH_SECONDS
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
            if self.cluster.connect and time.monotonic() >= check_at:  # its executors may be gone with it
                self.cluster.check_server(self.plan.config.connect_timeout)
                check_at = time.monotonic() + WATCH_SECONDS

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
        if self.cluster.lost:  # its job went with the server: nothing to wait for (the thread is a daemon)
            self.job = None
            return
        deadline = time.monotonic() + 10
        while self.job.is_alive() and time.monotonic() < deadline:
            self.server.poll(0.05)  # answer late hellos
        self.job.join(timeout=0.1)
        if self.job.is_alive():
            self.cluster.cancel(self.tag)
            self.job.join(timeout=60)
        self.job = None

    def summary(self) -> dict:
        """The transport, and the messages dropped (not answering the round in flight) and the
        connections refused by the round channel, by reason."""
        return {
            "transport": self.name,
            "dropped_messages": dict(self.server.dropped),
            "refused_connections": self.server.refused(),
        }

    def close(self) -> None:
        self._cancel()
        self.server.shutdown()
        if self.plan.scope:
            drop_shards(self.plan.scope)  # what a lost task left, where the driver's directory is the executors'
