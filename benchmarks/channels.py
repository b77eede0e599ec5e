"""Round channels compared on loopback: Arrow Flight (what dist-mnist uses) against ZeroMQ.

A driver process sends 3.2 MB (the tutorial's 795,010 float32 parameters) to each of W
client processes and receives 3.2 MB back from each, as a round does, with no compute:
  flight  dist_mnist.channel: RoundServer + serve_rounds (one do_exchange stream per client,
          Arrow buffers, the run secret checked on every call);
  zmq     pyzmq ROUTER/DEALER, zero-copy frames, a 2-frame message each way (no authentication).
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

N_FLOATS = 795_010


def flight_client(address: str, secret: str, w: int) -> None:
    from dist_mnist.channel import serve_rounds
    from dist_mnist.rounds import RoundResult

    zeros = np.zeros(N_FLOATS, np.float32)
    serve_rounds(address, secret, {"generation": 1, "worker": w}, lambda flat, spec: RoundResult(zeros, 0.0, 0, {w: 0.0}))


def flight_rounds(W: int, rounds: int) -> list[float]:
    from dist_mnist.channel import RoundServer
    from dist_mnist.rounds import Combiner, RoundSpec
    from dist_mnist.channel import decode_result

    secret = secrets.token_urlsafe(32)
    server = RoundServer("127.0.0.1", 0, secret, W)
    server.start_generation(1)
    procs = [mp.Process(target=flight_client, args=(f"grpc+tcp://127.0.0.1:{server.port}", secret, w)) for w in range(W)]
    for p in procs:
        p.start()
    for _ in range(W):
        server.events.get(timeout=60)
    flat, times = np.ones(N_FLOATS, np.float32), []
    for r in range(rounds):
        t0 = time.perf_counter()
        for w in range(W):
            server.send(w, flat, RoundSpec(0, r))
        got = {}
        for _ in range(W):
            _, _, w, (sums, meta) = server.events.get(timeout=60)
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


def zmq_client(port: int, w: int) -> None:
    import zmq

    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.IDENTITY, str(w).encode())
    sock.connect(f"tcp://127.0.0.1:{port}")
    sock.send_multipart([b"hello", b""])
    zeros = np.zeros(N_FLOATS, np.float32)
    while True:
        meta, payload = sock.recv_multipart(copy=False)
        if meta.bytes == b"stop":
            break
        np.frombuffer(payload.buffer, np.float32)  # the received vector, without a copy
        sock.send_multipart([b'{"loss": 0.0, "n": 0}', zeros], copy=False)
    sock.close()
    ctx.term()


def zmq_rounds(W: int, rounds: int) -> list[float]:
    import zmq

    from dist_mnist.rounds import Combiner, RoundResult

    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    procs = [mp.Process(target=zmq_client, args=(port, w)) for w in range(W)]
    for p in procs:
        p.start()
    for _ in range(W):
        sock.recv_multipart()
    flat, times = np.ones(N_FLOATS, np.float32), []
    for r in range(rounds):
        t0 = time.perf_counter()
        for w in range(W):
            sock.send_multipart([str(w).encode(), json.dumps({"round": r}).encode(), flat], copy=False)
        got = {}
        for _ in range(W):
            ident, meta, payload = sock.recv_multipart(copy=False)
            json.loads(meta.bytes)
            got[int(ident.bytes)] = RoundResult(np.frombuffer(payload.buffer, np.float32), 0.0, 0)
        combiner = Combiner()
        for w in range(W):
            combiner.add(got[w])
        times.append(1000 * (time.perf_counter() - t0))
    for w in range(W):
        sock.send_multipart([str(w).encode(), b"stop", b""])
    for p in procs:
        p.join()
    sock.close()
    ctx.term()
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
        flight += flight_rounds(args.workers, args.rounds // 2)
        zmq_ += zmq_rounds(args.workers, args.rounds // 2)
    result["flight"], result["zmq"] = summary(flight), summary(zmq_)
    print(json.dumps(result), flush=True)
    if args.out:
        path = Path(args.out) / "channels.json"
        atomic_write_json(path, result)


if __name__ == "__main__":
    main()
