"""A driver (RoundServer) and W worker threads without Spark, rounds reduced by the driver or
along the chain (dist_mnist.channel.chain); used by tests/unit/test_channel_chain.py."""

from __future__ import annotations

import threading

from dist_mnist.channel.chain import PeerLinks
from dist_mnist.channel.server import RoundServer
from dist_mnist.channel.worker import serve_rounds
from dist_mnist.rounds import Combiner

LATEST: dict = {}  # of the latest start(): "gather" (the links' addresses swapped), "links" {worker: PeerLinks}


class Gather:
    """BarrierTaskContext.allGather for threads: every worker's string, in worker order."""

    def __init__(self, workers: int):
        self.values = [""] * workers
        self.barrier = threading.Barrier(workers)

    def of(self, w: int):
        def exchange(value: str) -> list[str]:
            self.values[w] = value
            self.barrier.wait(timeout=60)
            return list(self.values)

        return exchange


def run_worker(endpoint, w: int, workers: int, reduce: str, compute, exchange, errors: list, generation: int = 1):
    """Worker w's task: its links (chain), then rounds until the driver says stop."""
    links = None
    try:
        if reduce == "chain":
            links = LATEST["links"][w] = PeerLinks(endpoint, w, workers, "127.0.0.1", exchange)
        serve_rounds(endpoint, {"generation": generation, "worker": w}, compute, links.deliver if links else None)
    except BaseException as e:  # noqa: BLE001 - handed to the test
        errors.append((w, e))
    finally:
        if links is not None:
            links.close()


def start(kind: str, workers: int, floats: int, reduce: str, compute_of, n_classes: int = 10):
    """A server of generation 1 and its W worker threads, every hello received."""
    server = RoundServer(kind, "127.0.0.1", 0, workers, floats, n_classes)
    server.start_generation(1)
    gather, errors = Gather(workers), []
    LATEST.update(gather=gather, links={})
    threads = [
        threading.Thread(
            target=run_worker,
            daemon=True,
            args=(server.endpoint, w, workers, reduce, compute_of(w), gather.of(w), errors),
        )
        for w in range(workers)
    ]
    for t in threads:
        t.start()
    hellos = set()
    while len(hellos) < workers:
        event = server.poll(30)
        assert event is not None and event[0] == "hello", (event, errors)
        hellos.add(event[2])
    return server, threads, errors


def one_round(server, workers: int, reduce: str, flat, spec, timeout: float = 60):
    """Send a round to every worker; the combined result (chain: worker W-1's), as the barrier transport does."""
    server.begin_round()
    for w in range(workers):
        server.send(w, flat, spec)
    order = [workers - 1] if reduce == "chain" else list(range(workers))
    total, results = Combiner(), {}
    i = 0
    while i < len(order):
        event = server.poll(timeout)
        if event is None:
            return None
        assert event[0] == "result", event
        results[event[2]] = event[3]
        while i < len(order) and order[i] in results:
            total.add(results.pop(order[i]))
            i += 1
    return total.result()


def stop(server, threads) -> None:
    server.stop_workers()
    for t in threads:
        t.join(timeout=30)
    server.shutdown()
