"""A driver for the hostile-peer tests, in a process of its own (its memory and descriptors are
then its own to measure): a RoundServer over TCP and one worker thread, commanded on stdin.

    python channel_driver.py DIR [SOFT HARD]    # SOFT HARD: its RLIMIT_NOFILE before the server starts

Prints one JSON line {"port", "nofile"} once the worker has said hello, then answers each command:
  round   one round, then an atomic write of 1 MB into DIR (as a checkpoint); "ok" or "error ..."
  stats   {"rss_kb", "fds", "refused", "dropped"} as JSON
  quit    stops the worker and the server, prints "bye"
Every line the channel logs is printed as "LOG <line>".
"""

from __future__ import annotations

import json
import os
import resource
import sys
import threading
from pathlib import Path

import numpy as np

from dist_mnist.channel.server import RoundServer
from dist_mnist.channel.worker import serve_rounds
from dist_mnist.files.atomic import atomic_write_bytes
from dist_mnist.rounds import RoundResult, RoundSpec

FLOATS = 10_000


def rss_kb() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def say(*parts) -> None:
    print(*parts, flush=True)


def main() -> None:
    out = Path(sys.argv[1])
    if len(sys.argv) > 2:
        resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[2]), int(sys.argv[3])))
    server = RoundServer("tcp", "127.0.0.1", 0, 1, FLOATS, 10, log=lambda line: say("LOG", line))
    server.start_generation(1)
    compute = lambda flat, spec: RoundResult(flat * 2, 0.0, 1, {0: 0.0})  # noqa: E731
    worker = threading.Thread(
        target=serve_rounds, args=(server.endpoint, {"generation": 1, "worker": 0}, compute), daemon=True
    )
    worker.start()
    assert server.poll(30)[0] == "hello"
    say(json.dumps({"port": server.port, "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)}))
    flat = np.arange(FLOATS, dtype=np.float32)
    for r, line in enumerate(sys.stdin):
        command = line.strip()
        if command == "round":
            try:
                server.begin_round()
                server.send(0, flat, RoundSpec(0, r))
                event = server.poll(30)
                if event is None or event[0] != "result" or not np.array_equal(event[3].sums, flat * 2):
                    raise RuntimeError(f"round {r}: {event and event[0]}")
                atomic_write_bytes(out / "checkpoint.bin", bytes(1 << 20))
                say("ok")
            except Exception as e:  # noqa: BLE001 - reported to the test
                say("error", type(e).__name__, str(e))
        elif command == "stats":
            say(
                json.dumps(
                    {
                        "rss_kb": rss_kb(),
                        "fds": len(os.listdir("/proc/self/fd")),
                        "refused": server.refused(),
                        "dropped": dict(server.dropped),
                    }
                )
            )
        elif command == "quit":
            break
    server.stop_workers()
    worker.join(timeout=10)
    server.shutdown()
    say("bye")


if __name__ == "__main__":
    main()
