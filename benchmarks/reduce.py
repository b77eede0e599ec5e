"""What the chain reduce saves the driver: its received bytes a round and the round time, with
every worker sending its sums to the driver (reduce = "driver") or the workers adding them along
a chain (reduce = "chain", dist_mnist.channel.chain), at W = 2, 4, 8 on loopback.

The driver (this process) runs dist_mnist.channel.server's RoundServer; each worker is a process
(spawn) running serve_rounds, with the chain's PeerLinks where reduce = "chain" (their
addresses swapped through files, as BarrierTaskContext.allGather does in Spark). A worker's
compute returns a fixed vector at once, so a round is all communication: the driver sends the
round's vector to each worker, then takes W results (driver) or worker W-1's sum (chain) and
combines them in worker order. Over TCP with CURVE (a cluster's channel), or a Unix socket
(--kind ipc). Sync mode's vector, the tutorial's 795,010 floats. The designs alternate in
blocks so that both see the same machine; on 2 shared cores W = 8 processes contend for CPU,
which a cluster's W machines would not. Prints one JSON object; with --out writes OUT/reduce.json
(--kind ipc: OUT/reduce-ipc.json).

    python benchmarks/reduce.py --rounds 60 --out benchmarks/results
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from provenance import loadavg, provenance

from dist_mnist.files.atomic import atomic_write_json

N_PARAMS = 795_010  # the tutorial's 784-1000-10 network, sync mode's vector
DESIGNS = ("driver", "chain")


def file_gather(folder: str, w: int, workers: int):
    """allGather through files in `folder`: each worker's string, in worker order."""

    def exchange(value: str) -> list[str]:
        tmp = Path(folder) / f".{w}"
        tmp.write_text(value)
        tmp.rename(Path(folder) / str(w))
        deadline = time.monotonic() + 60
        while not all((Path(folder) / str(i)).exists() for i in range(workers)):
            if time.monotonic() > deadline:
                raise TimeoutError("the workers did not all start")
            time.sleep(0.01)
        return [(Path(folder) / str(i)).read_text() for i in range(workers)]

    return exchange


def worker(endpoint, w: int, workers: int, design: str, folder: str) -> None:
    from dist_mnist.channel.chain import PeerLinks
    from dist_mnist.channel.worker import serve_rounds
    from dist_mnist.rounds import RoundResult

    sums = np.full(N_PARAMS, 1e-3 * (w + 1), np.float32)
    links = PeerLinks(endpoint, w, workers, "127.0.0.1", file_gather(folder, w, workers)) if design == "chain" else None
    try:
        serve_rounds(
            endpoint,
            {"generation": 1, "worker": w},
            lambda flat, spec: RoundResult(sums, 1.0, 1, {w: 0.0}),
            links.deliver if links else None,
        )
    finally:
        if links is not None:
            links.close()


def run_rounds(kind: str, design: str, W: int, rounds: int) -> tuple[list[float], list[int]]:
    """Milliseconds and the driver's received bytes of each of `rounds` rounds."""
    from dist_mnist.channel.server import RoundServer
    from dist_mnist.rounds import Combiner, RoundSpec

    server = RoundServer(kind, "127.0.0.1", 0, W, N_PARAMS, 10)
    server.start_generation(1)
    with tempfile.TemporaryDirectory() as folder:
        procs = [mp.Process(target=worker, args=(server.endpoint, w, W, design, folder)) for w in range(W)]
        for p in procs:
            p.start()
        for _ in range(W):
            assert server.poll(60)[0] == "hello"
        order = [W - 1] if design == "chain" else list(range(W))
        flat, times, received = np.ones(N_PARAMS, np.float32), [], []
        expected = None
        for r in range(rounds):
            t0, b0 = time.perf_counter(), server.received_bytes
            server.begin_round()
            for w in range(W):
                server.send(w, flat, RoundSpec(0, r))
            got, combiner = {}, Combiner()
            for w in order:
                while w not in got:
                    event = server.poll(60)
                    assert event is not None and event[0] == "result", event
                    got[event[2]] = event[3]
                combiner.add(got.pop(w))
            times.append(1000 * (time.perf_counter() - t0))
            received.append(server.received_bytes - b0)
            sums = combiner.result().sums
            expected = sums.copy() if expected is None else expected
            assert np.array_equal(sums, expected) and combiner.n == W  # every worker's sums, every round
        server.stop_workers()
        for p in procs:
            p.join()
        server.shutdown()
    return times, received


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workers", default="2,4,8")
    p.add_argument("--rounds", type=int, default=60, help="rounds of each design and W, over all blocks")
    p.add_argument("--blocks", type=int, default=3, help="alternations of the designs")
    p.add_argument("--kind", default="tcp", choices=["tcp", "ipc"])
    p.add_argument("--out")
    args = p.parse_args()
    mp.set_start_method("spawn")
    result = provenance("reduce.py")
    result.update(
        {
            "kind": args.kind,
            "floats": N_PARAMS,
            "vector_bytes": 4 * N_PARAMS,
            "rounds": args.rounds,
            "blocks": args.blocks,
            "by_workers": {},
        }
    )
    if args.kind == "ipc":  # whether the driver's design moved the vectors through /dev/shm (channel.shm)
        from dist_mnist.channel.server import RoundServer

        probe = RoundServer("ipc", "127.0.0.1", 0, 1, N_PARAMS, 10)
        result["shared_memory"] = bool(probe.shm)
        probe.shutdown()
    per_block, warmup = args.rounds // args.blocks, 3
    for W in (int(x) for x in args.workers.split(",")):
        times: dict[str, list[float]] = {d: [] for d in DESIGNS}
        received: dict[str, list[int]] = {d: [] for d in DESIGNS}
        for _ in range(args.blocks):
            for design in DESIGNS:
                t, b = run_rounds(args.kind, design, W, per_block + warmup)
                times[design] += t[warmup:]
                received[design] += b[warmup:]
        row = {
            d: {
                "median_ms": round(statistics.median(times[d]), 2),
                "p90_ms": round(float(np.percentile(times[d], 90)), 2),
                "driver_received_bytes": int(statistics.median(received[d])),
                "rounds": len(times[d]),
            }
            for d in DESIGNS
        }
        row["ratio_chain_to_driver_ms"] = round(row["chain"]["median_ms"] / row["driver"]["median_ms"], 3)
        row["ratio_chain_to_driver_bytes"] = round(
            row["chain"]["driver_received_bytes"] / row["driver"]["driver_received_bytes"], 3
        )
        result["by_workers"][str(W)] = row
        print(json.dumps({"W": W, **row}), flush=True)
    result["loadavg_after"] = loadavg()
    print(json.dumps(result), flush=True)
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        name = "reduce.json" if args.kind == "tcp" else f"reduce-{args.kind}.json"
        atomic_write_json(Path(args.out) / name, result)


if __name__ == "__main__":
    main()
