"""The Arrow Flight round channel dist-mnist used before ZeroMQ, kept for benchmarks/channels.py.

The driver runs a `RoundServer`; each worker opens one `do_exchange` stream for the whole
run and keeps it: the driver writes a round (the vector as one float32 column, the RoundSpec
as JSON metadata), the worker writes its result back the same way. Vectors travel as Arrow
buffers, without pickling and, on receipt, without a copy.

Every call must carry this run's secret in an `authorization` header (compared in constant
time); a call without it is refused before it reaches the handler. The secret travels to
the workers inside the Spark task, never on a command line or in a log.
"""

from __future__ import annotations

import hmac
import json
import queue
import threading
from dataclasses import asdict

import numpy as np
import pyarrow as pa
import pyarrow.flight as flight

from plain_channel import decode_result, encode_result  # noqa: F401 - the same metadata format
from dist_mnist.rounds import RoundSpec

SCHEMA = pa.schema([("v", pa.float32())])
STOP = {"stop": True}


def to_batch(vec: np.ndarray) -> pa.RecordBatch:
    """A float32 vector as a one-column record batch, without a copy."""
    vec = np.ascontiguousarray(vec, dtype=np.float32)
    return pa.RecordBatch.from_arrays([pa.Array.from_buffers(pa.float32(), len(vec), [None, pa.py_buffer(vec)])],
                                      schema=SCHEMA)


def from_batch(batch: pa.RecordBatch) -> np.ndarray:
    """The float32 vector of a record batch: a read-only view of the received buffer."""
    return batch.column(0).to_numpy(zero_copy_only=True)


class _Auth(flight.ServerMiddlewareFactory):
    """Refuses every call that lacks this run's secret."""

    def __init__(self, secret: str):
        self.expected = f"Bearer {secret}".encode()

    def start_call(self, info, headers):
        sent = (headers.get("authorization") or [""])[0]
        if not hmac.compare_digest(sent.encode() if isinstance(sent, str) else sent, self.expected):
            raise flight.FlightUnauthenticatedError("dist-mnist round channel: missing or wrong run secret")
        return None


def call_options(secret: str, timeout: float | None = None) -> flight.FlightCallOptions:
    """Client call options carrying the run's secret."""
    return flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {secret}".encode())], timeout=timeout)


class RoundServer(flight.FlightServerBase):
    """The driver's end: one stream per worker; rounds out through per-worker queues, results in.

    Events put on `events`: ("hello", generation, w, info), ("result", generation, w,
    (sums, meta bytes)), ("lost", generation, w, reason).
    """

    def __init__(self, host: str, port: int, secret: str, workers: int):
        super().__init__(f"grpc+tcp://{host}:{port}", middleware={"auth": _Auth(secret)})
        self.workers = workers
        self.generation = 0
        self.events: queue.Queue = queue.Queue()
        self._outbox: dict[tuple[int, int], queue.Queue] = {}
        self._lock = threading.Lock()

    def start_generation(self, generation: int) -> None:
        """Accept streams of this generation only; older workers are told to stop."""
        with self._lock:
            old = [q for (g, _), q in self._outbox.items() if g != generation]
            self._outbox = {k: q for k, q in self._outbox.items() if k[0] == generation}
            self.generation = generation
        for q in old:
            q.put(STOP)

    def send(self, w: int, flat: np.ndarray, spec: RoundSpec) -> None:
        """Queue one round for worker w of the current generation."""
        self._queue(self.generation, w).put((flat, json.dumps(asdict(spec)).encode()))

    def stop_workers(self) -> None:
        """Tell every connected worker to finish its task."""
        with self._lock:
            queues = list(self._outbox.values())
        for q in queues:
            q.put(STOP)

    def _queue(self, generation: int, w: int) -> queue.Queue:
        with self._lock:
            return self._outbox.setdefault((generation, w), queue.Queue())

    def do_exchange(self, context, descriptor, reader, writer):
        hello = json.loads(descriptor.command)
        generation, w = int(hello["generation"]), int(hello["worker"])
        if generation != self.generation or not 0 <= w < self.workers:
            raise flight.FlightServerError(f"stale or unknown worker {w} of generation {generation}")
        outbox = self._queue(generation, w)
        self.events.put(("hello", generation, w, hello))
        writer.begin(SCHEMA)
        empty = to_batch(np.zeros(0, np.float32))
        try:
            while True:
                item = outbox.get()
                if item is STOP:
                    writer.write_with_metadata(empty, json.dumps(STOP).encode())
                    return
                flat, meta = item
                writer.write_with_metadata(to_batch(flat), meta)
                chunk = reader.read_chunk()
                self.events.put(("result", generation, w, (from_batch(chunk.data), chunk.app_metadata.to_pybytes())))
        except Exception as e:  # the worker's stream broke: it died or was cancelled
            self.events.put(("lost", generation, w, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"))


def serve_rounds(address: str, secret: str, hello: dict, compute) -> None:
    """The worker's end: open one stream, then answer rounds with compute(flat, spec) -> RoundResult
    until the driver says stop. An exception in compute is sent back as an error result, then raised."""
    client = flight.FlightClient(address)
    try:
        descriptor = flight.FlightDescriptor.for_command(json.dumps(hello).encode())
        writer, reader = client.do_exchange(descriptor, options=call_options(secret))
        writer.begin(SCHEMA)
        empty = to_batch(np.zeros(0, np.float32))
        while True:
            chunk = reader.read_chunk()
            meta = json.loads(chunk.app_metadata.to_pybytes())
            if meta.get("stop"):
                break
            try:
                result = compute(from_batch(chunk.data), RoundSpec(**meta))
            except Exception as e:
                error = {"error": f"{e}", "type": type(e).__name__}
                writer.write_with_metadata(empty, json.dumps(error).encode())
                raise
            writer.write_with_metadata(to_batch(result.sums), encode_result(result))
        writer.done_writing()
        writer.close()
    finally:
        client.close()
