"""Round channels compared on loopback: Arrow Flight (what dist-mnist uses) against ZeroMQ.

A driver process sends 3.2 MB (the tutorial's 795,010 float32 parameters) to each of W
client processes and receives 3.2 MB back from each, as a round does, with no compute:
  flight  benchmarks/flight_channel.py, the Arrow Flight channel dist-mnist used first: one
          do_exchange stream per client, Arrow buffers, the run secret checked on every call;
  zmq     dist_mnist.channel, what dist-mnist uses: ROUTER/DEALER, zero-copy frames, PLAIN
          authentication per connection, 2 I/O threads.
Clients start with `spawn` (gRPC does not survive fork). Prints one JSON object; with --out
writes OUT/channels.json. Needs pyzmq (pip install pyzmq).

    python benchmarks/channels.py --workers 2 --rounds 300 --out benchmarks/results
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import secrets
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from dist_mnist.artifacts import atomic_write_json  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

N_FLOATS = 795_010


def _zeros_client(serve_rounds, address: str, secret: str, w: int) -> None:
    from dist_mnist.rounds import RoundResult

    zeros = np.zeros(N_FLOATS, np.float32)
    serve_rounds(address, secret, {"generation": 1, "worker": w}, lambda flat, spec: RoundResult(zeros, 0.0, 0, {w: 0.0}))


def flight_client(address: str, secret: str, w: int) -> None:
    from flight_channel import serve_rounds

    _zeros_client(serve_rounds, address, secret, w)


def zmq_client(address: str, secret: str, w: int) -> None:
    from dist_mnist.channel import serve_rounds

    _zeros_client(serve_rounds, address, secret, w)


def run_rounds(kind: str, W: int, rounds: int) -> list[float]:
    """Rounds of W clients over one channel: send, receive, combine in worker order."""
    from dist_mnist.rounds import Combiner, RoundSpec

    secret = secrets.token_urlsafe(32)
    if kind == "flight":
        from flight_channel import RoundServer, decode_result

        server = RoundServer("127.0.0.1", 0, secret, W)
        address, client = f"grpc+tcp://127.0.0.1:{server.port}", flight_client
        next_event = lambda: server.events.get(timeout=60)  # noqa: E731
    else:
        from dist_mnist.channel import RoundServer, decode_result

        server = RoundServer("127.0.0.1", 0, secret, W)
        address, client = f"tcp://127.0.0.1:{server.port}", zmq_client
        next_event = lambda: server.poll(60)  # noqa: E731
    server.start_generation(1)
    procs = [mp.Process(target=client, args=(address, secret, w)) for w in range(W)]
    for p in procs:
        p.start()
    for _ in range(W):
        assert next_event()[0] == "hello"
    flat, times = np.ones(N_FLOATS, np.float32), []
    for r in range(rounds):
        t0 = time.perf_counter()
        for w in range(W):
            server.send(w, flat, RoundSpec(0, r))
        got = {}
        for _ in range(W):
            _, _, w, (sums, meta) = next_event()
            got[w] = decode_result(sums, meta)
        combiner = Combiner()
        for w in range(W):
            combiner.add(got[w])
        times.append(1000 * (time.perf_counter() - t0))
    server.stop_workers()
    for p in procs:
        p.join()
    server.shutdown()
    return times


def summary(ms: list[float], warmup: int = 10) -> dict:
    kept = ms[warmup:]
    return {"median_ms": round(statistics.median(kept), 3), "p90_ms": round(float(np.percentile(kept, 90)), 3),
            "min_ms": round(min(kept), 3), "rounds": len(kept)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--rounds", type=int, default=300)
    p.add_argument("--out")
    args = p.parse_args()
    mp.set_start_method("spawn")
    result = {"workers": args.workers, "payload_bytes_each_way": 4 * N_FLOATS, "date": time.strftime("%Y-%m-%d %H:%M"),
              "command": "python benchmarks/channels.py " + " ".join(sys.argv[1:])}
    # alternate, so that both see the same machine
    flight, zmq_ = [], []
    for _ in range(2):
        flight += run_rounds("flight", args.workers, args.rounds // 2)
        zmq_ += run_rounds("zmq", args.workers, args.rounds // 2)
    result["flight"], result["zmq"] = summary(flight), summary(zmq_)
    print(json.dumps(result), flush=True)
    if args.out:
        path = Path(args.out) / "channels.json"
        atomic_write_json(path, result)


if __name__ == "__main__":
    main()
