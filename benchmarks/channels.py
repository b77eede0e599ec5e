"""What the round channel costs a round, on this machine: CURVE over TCP and a Unix socket,
against an unencrypted PLAIN ZeroMQ channel as the baseline.

A driver process sends the round's vector to each of W client processes and receives as
much back from each, as a round does, with no compute, then combines in worker order:
  plain   benchmarks/plain_channel.py: ZeroMQ over TCP, the secret in clear, nothing encrypted
          (the baseline: what CURVE costs is the difference);
  curve   dist_mnist.channel over TCP: CURVE-encrypted, per-run keys (what a cluster runs);
  ipc     dist_mnist.channel on a local master: a Unix socket, same user only, the vectors through
          files in a private /dev/shm directory (what a local master runs);
  ipc-frames  the same with the vectors in the socket's frames (RoundServer(shared_memory=False):
          what a local master runs where /dev/shm is missing or has no room).
Two sizes: sync mode ships the 795,010 parameters each way, average mode parameters and
Nesterov state (1,590,020 floats). The kinds alternate in blocks so that all see the same
machine; the load average is kept before and after. Clients start with `spawn` (a fresh
process, no ZeroMQ context inherited from the driver). Prints one JSON object; with --out writes OUT/channels.json.

    python benchmarks/channels.py --workers 2 --rounds 400 --out benchmarks/results
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import secrets
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from provenance import loadavg, provenance

from dist_mnist.files.atomic import atomic_write_json

N_PARAMS = 795_010  # the tutorial's 784-1000-10 network
SIZES = {"sync": N_PARAMS, "average": 2 * N_PARAMS}
KINDS = ("plain", "curve", "ipc", "ipc-frames")


def _zeros(w: int):
    from dist_mnist.rounds import RoundResult

    return lambda flat, spec: RoundResult(np.zeros(len(flat), np.float32), 0.0, 0, {w: 0.0})


def client(kind: str, target, w: int) -> None:
    """One worker: answers every round with zeros of the size it was sent."""
    if kind == "plain":
        from plain_channel import serve_rounds
    else:
        from dist_mnist.channel.worker import serve_rounds
    hello = {"generation": 1, "worker": w}
    if kind == "plain":
        serve_rounds(*target, hello, _zeros(w))
    else:
        serve_rounds(target, hello, _zeros(w))


def run_rounds(kind: str, W: int, floats: int, rounds: int) -> list[float]:
    """Milliseconds of each of `rounds` rounds of W clients over one channel."""
    from dist_mnist.channel.server import RoundServer
    from dist_mnist.rounds import Combiner, RoundSpec

    secret = secrets.token_urlsafe(32)
    if kind == "plain":
        import plain_channel

        server = plain_channel.RoundServer("127.0.0.1", 0, secret, W)
        target, next_event = (f"tcp://127.0.0.1:{server.port}", secret), lambda: server.poll(60)
        decode = plain_channel.decode_result
    else:
        server = RoundServer(
            "tcp" if kind == "curve" else "ipc", "127.0.0.1", 0, W, floats, 10, shared_memory=kind != "ipc-frames"
        )
        target, next_event, decode = server.endpoint, lambda: server.poll(60), None
    server.start_generation(1)
    procs = [mp.Process(target=client, args=(kind, target, w)) for w in range(W)]
    for p in procs:
        p.start()
    for _ in range(W):
        assert next_event()[0] == "hello"
    flat, times = np.ones(floats, np.float32), []
    for r in range(rounds):
        t0 = time.perf_counter()
        if decode is None:
            server.begin_round()
        for w in range(W):
            server.send(w, flat, RoundSpec(0, r))
        got = {}
        for _ in range(W):
            kind_, _, w, info = next_event()
            assert kind_ == "result", (kind_, info)
            got[w] = info if decode is None else decode(*info)
        combiner = Combiner()
        for w in range(W):
            combiner.add(got[w])
        times.append(1000 * (time.perf_counter() - t0))
    server.stop_workers()
    for p in procs:
        p.join()
    server.shutdown()
    return times


def summary(ms: list[float], warmup: int) -> dict:
    kept = ms[warmup:]
    return {
        "median_ms": round(statistics.median(kept), 3),
        "p90_ms": round(float(np.percentile(kept, 90)), 3),
        "min_ms": round(min(kept), 3),
        "rounds": len(kept),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--rounds", type=int, default=400, help="rounds of each kind and size, over all blocks")
    p.add_argument("--blocks", type=int, default=4, help="alternations of the kinds")
    p.add_argument("--out")
    args = p.parse_args()
    mp.set_start_method("spawn")
    result = provenance("channels.py")
    result.update({"workers": args.workers, "rounds": args.rounds, "blocks": args.blocks, "sizes": {}})
    per_block, warmup = args.rounds // args.blocks, 5  # the first rounds of a block connect and warm up
    for mode, floats in SIZES.items():
        times: dict[str, list[float]] = {k: [] for k in KINDS}
        for _ in range(args.blocks):
            for kind in KINDS:
                times[kind] += run_rounds(kind, args.workers, floats, per_block + warmup)[warmup:]
        size = {"floats_each_way": floats, "bytes_each_way": 4 * floats, **{k: summary(v, 0) for k, v in times.items()}}
        for kind in KINDS[1:]:
            size[f"ratio_{kind}_to_plain"] = round(size[kind]["median_ms"] / size["plain"]["median_ms"], 3)
        result["sizes"][mode] = size
    result["loadavg_after"] = loadavg()
    print(json.dumps(result), flush=True)
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        atomic_write_json(Path(args.out) / "channels.json", result)


if __name__ == "__main__":
    main()
