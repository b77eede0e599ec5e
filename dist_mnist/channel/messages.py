"""How a round travels as ZeroMQ frames: the vector in frames of a bounded size, a result as
JSON metadata plus its sums and confusion counts as raw frames. No Spark here.

The frame size bounds what a peer can make the driver hold before it has authenticated
(libzmq's ZMQ_MAXMSGSIZE ends a connection that announces a larger frame, before buffering it).
"""

from __future__ import annotations

import json

import numpy as np

from dist_mnist.rounds import RoundResult

CHUNK_BYTES = 1 << 18  # over TCP, vectors travel as frames of at most 256 KiB (on ipc, whole)
META_BYTES = 1 << 16  # the largest JSON metadata frame
FRAME_OVERHEAD = 256  # a frame's header and CURVE box


def frame_sizes(kind: str, max_floats: int, n_classes: int) -> tuple[int, int]:
    """(the bytes a vector's frame holds, the largest frame a legitimate peer sends) for a round
    of at most max_floats floats and n_classes x n_classes counts."""
    payload = max(4 * max_floats, 8 * n_classes * n_classes)
    chunk = CHUNK_BYTES if kind == "tcp" else max(payload, 1)  # nothing hostile can reach a Unix socket of ours
    return chunk, max(META_BYTES, min(chunk, payload)) + FRAME_OVERHEAD


def frames_of(chunk: int, *arrays: np.ndarray | None) -> list[memoryview]:
    """Arrays as frames of at most `chunk` bytes, without a copy."""
    out = []
    for a in arrays:
        if a is not None and a.size:
            raw = np.ascontiguousarray(a).data.cast("B")  # a memoryview of the array's bytes
            out += [raw[i : i + chunk] for i in range(0, len(raw), chunk)]
    return out


def joined(frames: list, nbytes: int) -> np.ndarray | None:
    """Received frames (zmq.Frame or bytes) as one read-only byte array (one frame: a view;
    more: one copy), or None if they do not hold exactly nbytes (libzmq has bounded each frame)."""
    buffers = [getattr(f, "buffer", f) for f in frames]
    if sum(len(b) for b in buffers) != nbytes:
        return None
    if len(buffers) == 1:
        out = np.frombuffer(buffers[0], np.uint8)
    else:
        out = np.empty(nbytes, np.uint8)
        np.concatenate([np.frombuffer(b, np.uint8) for b in buffers], out=out)
    out.setflags(write=False)
    return out


def encode_result(r: RoundResult, answer: dict, chunk: int, shared: np.ndarray | None = None) -> list:
    """A result's frames: JSON of its small fields and of the round it answers, then its sums
    (float32) and confusion counts (int64) as raw frames. With `shared` (this worker's mapped
    sums file, channel_shm), the sums are written there instead and only the counts travel."""
    classes = None if r.confusion is None else len(r.confusion)
    in_shared = shared is not None and len(r.sums) <= len(shared)
    meta = {
        **answer,
        "loss": r.loss,
        "n": r.n,
        "seconds": {str(k): v for k, v in r.seconds.items()},
        "shard_bytes": r.shard_bytes,
        "floats": len(r.sums),
        "classes": classes,
        "shm": in_shared,
    }
    confusion = None if r.confusion is None else np.ascontiguousarray(r.confusion, np.int64)
    if in_shared:
        assert shared is not None  # for mypy: in_shared says so
        np.copyto(shared[: len(r.sums)], r.sums, casting="same_kind")
        return [json.dumps(meta).encode(), *frames_of(chunk, confusion)]
    return [json.dumps(meta).encode(), *frames_of(chunk, np.ascontiguousarray(r.sums, np.float32), confusion)]


def decode_result(meta: dict, frames: list, shared: np.ndarray | None = None) -> RoundResult | None:
    """The RoundResult of a result message's metadata and raw frames (or bytes), or None if they
    disagree. A result whose sums are in shared memory reads them from `shared` (the driver's
    read-only map of that worker's sums file), in place."""
    try:
        n, c = int(meta["floats"]), meta["classes"]
        c = None if c is None else int(c)
        if n < 0 or (c is not None and c < 0):
            return None
        counts = 0 if c is None else 8 * c * c
        in_shared = bool(meta.get("shm"))
        if in_shared and (shared is None or n > len(shared)):
            return None
        if in_shared and not counts:  # nothing travels after the metadata
            data = None if frames else np.zeros(0, np.uint8)
        else:
            data = joined(frames, counts if in_shared else 4 * n + counts)
        if data is None:
            return None
        sums = shared[:n] if in_shared and shared is not None else data[: 4 * n].view(np.float32)
        counts_at = 0 if in_shared else 4 * n
        confusion = None if c is None else data[counts_at:].view(np.int64).reshape(c, c)
        return RoundResult(
            sums,
            float(meta["loss"]),
            int(meta["n"]),
            {int(k): float(v) for k, v in meta["seconds"].items()},
            int(meta["shard_bytes"]),
            confusion,
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
