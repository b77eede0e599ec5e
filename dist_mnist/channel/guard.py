"""Who may reach the driver's round channel over TCP, and what a peer that never authenticates
can cost it. No Spark here.

- Keys: a ZAP handler admits a CURVE connection only with one of this run's worker keys, and
  names it by that worker: ZeroMQ stamps the name on every message of the connection as its
  User-Id, which the driver compares with the worker the message claims to come from. Any
  other connection fails its handshake, and none of its messages reach the driver.
- Connections: libzmq closes a connection whose handshake has not finished within
  HANDSHAKE_SECONDS, so only a connection younger than that can still be unauthenticated.
  A new connection beyond `max_pending` young ones is shut down at once (a worker refused so
  reconnects, as ZeroMQ does). The process's soft limit on open files is raised to its hard
  limit. So a flood of idle or garbage connections holds a bounded number of descriptors.
- Refused attempts are told in one line at most every LOG_EVERY seconds, with counts and the
  peers' addresses where known.
"""

from __future__ import annotations

import errno
import os
import resource
import socket
import stat
import threading
import time
from collections import Counter
from typing import TypedDict

import zmq
from zmq.utils.monitor import parse_monitor_message

from dist_mnist.hints import Log

HANDSHAKE_SECONDS = 5  # a handshake on a healthy network takes milliseconds
LOG_EVERY = 10.0  # seconds between two lines about refused connections
ZAP_ENDPOINT = "inproc://zeromq.zap.01"  # where libzmq asks who may connect (RFC 27)
EVENTS = (
    zmq.EVENT_ACCEPTED
    | zmq.EVENT_ACCEPT_FAILED
    | zmq.EVENT_DISCONNECTED
    | zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_MONITOR_STOPPED
)
REASONS = {  # refused attempts by reason, in the order the log line names them
    "over_cap": "over the cap of {cap} unauthenticated",
    "timeout": "timed out in the handshake",
    "wrong_key": "with a key not of this run",
    "protocol": "not CURVE to this run's server key",
    "malformed": "malformed or oversized",
    "closed": "closed by the peer in the handshake",
    "accept_failed": "not accepted (no file descriptor left)",
}


def raise_open_files_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit; return the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):  # a container may forbid it: the cap still bounds the channel
            pass
    return soft


class MonitorEvent(TypedDict):
    """A socket monitor's event, as zmq.utils.monitor.parse_monitor_message decodes it."""

    event: int
    value: int  # by event: the connection's file descriptor, an errno, ...
    endpoint: bytes


class ChannelGuard:
    """The ZAP handler and the connection monitor of one ROUTER socket, in one thread.

    Create it before the socket binds (so no connection is ever admitted without it), then
    call start(port) once bound; stop() before the socket closes.
    """

    def __init__(self, ctx: zmq.Context, sock: zmq.Socket, keys: dict[bytes, str], max_pending: int, log: Log):
        self.sock, self.keys, self.max_pending, self.log = sock, keys, max_pending, log
        self.zap = ctx.socket(zmq.REP)
        self.zap.linger = 0
        self.zap.bind(ZAP_ENDPOINT)
        address = f"inproc://dist-mnist-monitor-{id(self)}"
        self.monitor = ctx.socket(zmq.PAIR)
        self.monitor.rcvhwm = 0  # never drop an event, whatever the flood: the cap depends on them
        sock.monitor(address, EVENTS)
        self.monitor.connect(address)
        self.port = 0
        self.young: dict[int, tuple[float, str]] = {}  # fd -> (accepted at, peer): perhaps not authenticated
        self.totals: Counter[str] = Counter()  # refused attempts by reason, for the whole run
        self.unlogged: Counter[str] = Counter()
        self.peers: set[str] = set()  # of the refused attempts not yet logged
        self.events: Counter[str] = Counter()  # accepted, disconnected, succeeded, failed: for the malformed count
        self.our_drops = 0  # connections we shut down whose handshake event has not come yet
        self.last_log, self.window_start = -float("inf"), time.monotonic()
        self.thread = threading.Thread(target=self._run, daemon=True, name="dist-mnist-channel-guard")

    def start(self, port: int) -> None:
        """Watch the connections of the socket, now bound to `port`."""
        self.port = port
        self.thread.start()

    def stop(self) -> None:
        """Stop watching (tells what was refused and not yet told); the socket may close after."""
        if self.thread.is_alive():
            self.sock.disable_monitor()  # the thread reads the events left, then ends at MONITOR_STOPPED
            self.thread.join(timeout=10)
        if not self.thread.is_alive() and not self.zap.closed:  # the thread failed or never started
            self.zap.close()
            self.monitor.close()

    def counts(self) -> dict[str, int]:
        """Refused connection attempts by reason, over the whole run."""
        return {k: v for k, v in self.totals.items() if v}

    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self.zap, zmq.POLLIN)
        poller.register(self.monitor, zmq.POLLIN)
        stopped = False
        try:
            while not stopped:
                ready = dict(poller.poll(500))
                if self.zap in ready:
                    self._answer(self.zap.recv_multipart())
                if self.monitor in ready:
                    events: list[MonitorEvent] = []
                    while True:  # the whole backlog at once: a later DISCONNECTED voids an earlier ACCEPTED
                        try:
                            events.append(parse_monitor_message(self.monitor.recv_multipart(zmq.NOBLOCK)))
                        except zmq.Again:
                            break
                    stopped = any(e["event"] == zmq.EVENT_MONITOR_STOPPED for e in events)
                    self._handle(events)
                self._tell(final=stopped)
        except Exception as e:  # noqa: BLE001 - fail closed: the ZAP socket stays bound, unanswered, so handshakes time out
            self.log(f"channel: the connection guard failed ({type(e).__name__}: {e}); no connection is admitted")
            return
        self.zap.close()  # this thread's sockets, closed by it
        self.monitor.close()

    def _answer(self, request: list[bytes]) -> None:
        """A ZAP reply: 200 with the worker's name for one of this run's keys, else 400."""
        padded = request + [b""] * (6 - len(request))
        _version, request_id, _domain, address, _identity, mechanism, *credentials = padded
        worker = self.keys.get(credentials[0]) if mechanism == b"CURVE" and credentials else None
        if worker is None:
            self._refuse("wrong_key", address.decode(errors="replace"))
        self.zap.send_multipart(
            [
                b"1.0",
                request_id,
                b"200" if worker else b"400",
                b"OK" if worker else b"not a key of this run",
                (worker or "").encode(),
                b"",
            ]
        )

    def _handle(self, events: list[MonitorEvent]) -> None:
        closed_later: set[int] = set()
        voided = [False] * len(events)
        for i in range(len(events) - 1, -1, -1):
            e = events[i]
            if e["event"] == zmq.EVENT_DISCONNECTED:
                closed_later.add(e["value"])
            elif e["event"] == zmq.EVENT_ACCEPTED:
                voided[i] = e["value"] in closed_later
                closed_later.discard(e["value"])
        now = self._prune()
        for e, void in zip(events, voided, strict=True):
            kind, value = e["event"], e["value"]
            if kind == zmq.EVENT_ACCEPTED:
                self.events["accepted"] += 1
                if not void:
                    self._accepted(value, now)
            elif kind == zmq.EVENT_DISCONNECTED:
                self.events["disconnected"] += 1
                self.young.pop(value, None)
            elif kind == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self.events["succeeded"] += 1
            elif kind == zmq.EVENT_ACCEPT_FAILED:
                self._refuse("accept_failed")
            elif kind in (
                zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL,
                zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
                zmq.EVENT_HANDSHAKE_FAILED_AUTH,
            ):
                self.events["failed"] += 1
                if kind == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
                    self._refuse("protocol")
                elif kind == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL and value == errno.EAGAIN:  # the timer
                    self._refuse("timeout")
                elif kind == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:  # the connection ended: the peer, or our cap
                    if self.our_drops:
                        self.our_drops -= 1
                    else:
                        self._refuse("closed")
                # FAILED_AUTH: counted by _answer, with its address

    def _prune(self) -> float:
        """Forget connections older than the handshake timeout: libzmq has closed or admitted them."""
        now = time.monotonic()
        self.young = {fd: v for fd, v in self.young.items() if now - v[0] < HANDSHAKE_SECONDS + 1}
        return now

    def _accepted(self, fd: int, now: float) -> None:
        """Note a new connection, or shut it down when it would exceed the cap of young ones."""
        try:
            conn = socket.socket(fileno=os.dup(fd))  # our own descriptor: libzmq may close `fd` meanwhile
        except OSError:
            return
        try:
            # still a connection of our listener? (an fd number libzmq closed may be reused by now)
            if not stat.S_ISSOCK(os.fstat(conn.fileno()).st_mode) or conn.getsockname()[1] != self.port:
                return
            peer = conn.getpeername()[0]
            if len(self.young) < self.max_pending:
                self.young[fd] = (now, peer)
                return
            conn.shutdown(socket.SHUT_RDWR)  # libzmq sees the connection end and closes its descriptor
            self.our_drops += 1
            self._refuse("over_cap", peer)
        except OSError:
            pass
        finally:
            conn.close()

    def _refuse(self, reason: str, peer: str | None = None, n: int = 1) -> None:
        self.totals[reason] += n
        self.unlogged[reason] += n
        if peer:
            self.peers.add(peer)

    def _count_malformed(self) -> None:
        """Connections libzmq closed with no handshake event (garbage, an oversized frame). They can
        be told apart only while no connection is in its handshake: then every open one has
        authenticated, and every other connection has ended with exactly one handshake event or none."""
        if self.young:
            return
        e = self.events
        still_open = e["accepted"] - e["disconnected"]
        silent = e["disconnected"] - e["failed"] - (e["succeeded"] - still_open)
        if silent > self.totals["malformed"]:
            self._refuse("malformed", n=silent - self.totals["malformed"])

    def _tell(self, final: bool = False) -> None:
        """One line about the attempts refused since the last, at most every LOG_EVERY seconds."""
        self._prune()
        self._count_malformed()
        now = time.monotonic()
        if not +self.unlogged or (now - self.last_log < LOG_EVERY and not final):
            return
        parts = [
            f"{self.unlogged[k]:,} {REASONS[k].format(cap=self.max_pending)}" for k in REASONS if self.unlogged[k] > 0
        ]
        peers = sorted(self.peers)
        where = (
            f"; from {', '.join(peers[:3])}" + (f" and {len(peers) - 3} more" if len(peers) > 3 else "")
            if peers
            else ""
        )
        self.log(
            f"channel: refused {sum(self.unlogged.values()):,} connection attempt(s) that did not "
            f"authenticate in the last {now - self.window_start:.1f} s ({', '.join(parts)}){where}"
        )
        self.unlogged, self.peers, self.last_log, self.window_start = Counter(), set(), now, now
