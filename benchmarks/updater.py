"""The Nesterov/L2 update: the longhand NumPy path against fused candidates, and what it does to an epoch.

One BLAS thread, the tutorial's float32 shapes (W0 784x1000, b0 1000, W1 1000x10, b1 10), l2 1e-4,
batch 128. Four parts, all in this script so every ratio is against a baseline run beside it:

- step: one whole update (all four arrays), median of many single timed calls, the candidates taken
  in turn within each block so load drifts hit them alike. Each call gets a fresh copy of a summed
  gradient (untimed: the NumPy path uses it as scratch). Candidates: `numpy` (today's nine passes,
  the baseline), `numpy_out` (the same passes into a preallocated temporary), `numpy_blocked` (the
  same, 64K elements at a time so a block's passes stay in cache), `numba` (the shipped
  fused kernels), `numexpr` (two evaluations: theta first, it needs the old v; then v). Each is
  also run 30 steps from the same start and compared with `numpy` bit for bit.
- start-up: fresh processes (an executor's Python worker is one): import numba, then the first
  `kernels()` with an empty numba cache (compile) and with a warm one (load), RSS after each.
- epoch: `local_steps` over one epoch of a 30,000-row shard of real MNIST (average mode's work on
  one of two workers), longhand against fused, alternating, from the same start (final params
  compared bit for bit).
"""

from __future__ import annotations

import os

# one BLAS thread, set before NumPy loads its BLAS
os.environ.update(dict.fromkeys(("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"), "1"))

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from provenance import loadavg, provenance

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dist_mnist.nn import fused  # noqa: E402
from dist_mnist.nn.updaters import Nesterovs, Sgd  # noqa: E402

SHAPES = {"W0": (784, 1000), "b0": (1000,), "W1": (1000, 10), "b1": (10,)}
LR, MU, L2, BATCH = 0.006, 0.9, 1e-4, 128


def longhand_into(theta, v, g, u, mu, eta, decay, scale) -> None:
    """updaters.nesterov_longhand's passes, the temporary u given (np.multiply(out=))."""
    np.multiply(v, -mu * mu, out=u)
    g *= eta
    v *= mu
    v -= g
    g *= 1 + mu
    u += g
    if decay is not None:
        theta *= decay
    u *= scale
    theta -= u


def constants(updater: Nesterovs, key: str):
    f = np.float32
    decay = f(1.0 - updater.l2 / BATCH) if updater.l2 and key.startswith("W") else None
    return f(updater.momentum), f(updater.learning_rate), decay, f(1 / BATCH)


def numpy_out(updater: Nesterovs):
    """Candidate (c): the longhand passes into a preallocated temporary."""
    scratch = {k: np.empty(s, np.float32) for k, s in SHAPES.items()}

    def step(params, grads, state):
        for k, theta in params.items():
            longhand_into(theta, state[k], grads[k], scratch[k], *constants(updater, k))

    return step


def numpy_blocked(updater: Nesterovs, chunk: int = 65536):
    """Candidate (c'): the longhand passes chunk by chunk (256 KB an array), so a chunk stays in cache."""
    u = np.empty(chunk, np.float32)

    def step(params, grads, state):
        for k, theta in params.items():
            flat = [a.reshape(-1) for a in (theta, state[k], grads[k])]
            for lo in range(0, flat[0].size, chunk):
                th, v, g = (a[lo : lo + chunk] for a in flat)
                longhand_into(th, v, g, u[: th.size], *constants(updater, k))

    return step


def numexpr_step(updater: Nesterovs):
    """Candidate (b): two numexpr evaluations an array; float32 constants as float32 scalars."""
    import numexpr

    numexpr.set_num_threads(1)
    f = np.float32
    mu, eta = f(updater.momentum), f(updater.learning_rate)
    consts = {"mu": mu, "eta": eta, "c1": -mu * mu, "c2": 1 + mu, "scale": f(1 / BATCH)}

    def step(params, grads, state):
        for k, theta in params.items():
            decay = f(1.0 - updater.l2 / BATCH) if k.startswith("W") else f(1)
            names = {"theta": theta, "v": state[k], "g": grads[k], "decay": decay, **consts}
            numexpr.evaluate("theta*decay - (v*c1 + (g*eta)*c2)*scale", local_dict=names, out=theta, casting="no")
            numexpr.evaluate("v*mu - g*eta", local_dict=names, out=state[k], casting="no")

    return step


def candidates(nesterovs: Nesterovs) -> dict:
    """name -> step(params, grads, state), for the Nesterov update."""
    out = {
        "numpy": lambda p, g, s: nesterovs.step(p, g, s, BATCH, longhand=True),
        "numpy_out": numpy_out(nesterovs),
        "numpy_blocked": numpy_blocked(nesterovs),
    }
    if fused.kernels() is not None:
        out["numba"] = lambda p, g, s: nesterovs.step(p, g, s, BATCH)
    with contextlib.suppress(ImportError):
        out["numexpr"] = numexpr_step(nesterovs)
    return out


def problem(seed: int, pool: int):
    """Xavier-scale params and `pool` summed gradients of a batch's magnitude."""
    rng = np.random.default_rng(seed)
    params = {k: rng.standard_normal(s, dtype=np.float32) * np.float32(0.05) for k, s in SHAPES.items()}
    grads = [
        {k: rng.standard_normal(s, dtype=np.float32) * np.float32(2) for k, s in SHAPES.items()} for _ in range(pool)
    ]
    return params, grads


def copy(d: dict) -> dict:
    return {k: v.copy() for k, v in d.items()}


def bit_identical(steps: dict, params, grads, n: int) -> dict:
    """For each candidate: params and state equal to the `numpy` path's, bit for bit, after n steps."""
    runs = {}
    for name, step in steps.items():
        p, s = copy(params), {k: np.zeros_like(v) for k, v in params.items()}
        for i in range(n):
            step(p, copy(grads[i % len(grads)]), s)
        runs[name] = (p, s)
    ref = runs["numpy"]
    return {
        name: all(np.array_equal(a[k].view(np.uint32), r[k].view(np.uint32)) for a, r in zip(run, ref) for k in r)
        for name, run in runs.items()
    }


def time_steps(steps: dict, params, grads, blocks: int, reps: int) -> dict:
    """Median, p10 and p90 ms of one whole update per candidate, taken in turn block by block."""
    own = {name: (copy(params), {k: np.zeros_like(v) for k, v in params.items()}) for name in steps}
    scratch = copy(grads[0])
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(blocks):
        for name, step in steps.items():
            p, s = own[name]
            for i in range(reps):
                for k, g in grads[i % len(grads)].items():
                    np.copyto(scratch[k], g)
                t = time.perf_counter()
                step(p, scratch, s)
                times[name].append(time.perf_counter() - t)
    out = {}
    for name, ts in times.items():
        q = statistics.quantiles(ts, n=10)
        out[name] = {
            "median_ms": statistics.median(ts) * 1e3,
            "p10_ms": q[0] * 1e3,
            "p90_ms": q[-1] * 1e3,
            "n": len(ts),
        }
    base = out["numpy"]["median_ms"]
    for r in out.values():
        r["ratio_to_numpy"] = r["median_ms"] / base
    return out


CHILD = """
import json, sys, time
t0 = time.perf_counter()
import numpy
t1 = time.perf_counter()
def mem():
    f = {l.split(':')[0]: int(l.split()[1]) for l in open('/proc/self/status')
         if l.startswith(('VmRSS', 'RssAnon', 'RssFile'))}
    return {k: round(v / 1024, 1) for k, v in f.items()}
out = {'import_numpy_s': t1 - t0, 'mem_numpy_MB': mem()}
if sys.argv[1] == 'numexpr':
    import numexpr
    out['import_numexpr_s'] = time.perf_counter() - t1
else:
    import numba
    t2 = time.perf_counter()
    out.update(import_numba_s=t2 - t1, mem_numba_MB=mem())
    from dist_mnist.nn import fused
    assert fused.kernels() is not None
    out.update(kernels_s=time.perf_counter() - t2, mem_kernels_MB=mem())
print(json.dumps(out))
"""


def start_up(runs: int) -> dict:
    """Fresh processes: numba's import, the first kernels() cold (compile) and warm (cache), RSS; numexpr's import."""

    def child(what: str, cache_dir: str) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_", "DIST_MNIST_"))}
        env.update(NUMBA_CACHE_DIR=cache_dir, PYTHONPATH=str(REPO))
        done = subprocess.run([sys.executable, "-c", CHILD, what], env=env, capture_output=True, text=True, check=True)
        return json.loads(done.stdout)

    cold, warm, ne = [], [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as cache:
            cold.append(child("numba", cache))  # an empty cache: compiles, then saves
            warm.append(child("numba", cache))  # loads what the run before saved
        with contextlib.suppress(subprocess.CalledProcessError):
            ne.append(child("numexpr", "/nonexistent"))

    def med(rows: list[dict], key: str):
        if not rows or key not in rows[0]:
            return None
        if isinstance(rows[0][key], dict):
            return {k: statistics.median(r[key][k] for r in rows) for k in rows[0][key]}
        return statistics.median(r[key] for r in rows)

    return {
        "runs": runs,
        "import_numpy_s": med(cold + warm, "import_numpy_s"),
        "import_numba_s": med(cold + warm, "import_numba_s"),
        "first_kernels_cold_cache_s": med(cold, "kernels_s"),
        "first_kernels_warm_cache_s": med(warm, "kernels_s"),
        "import_numexpr_s": med(ne, "import_numexpr_s"),
        "rss_MB": {
            "numpy": med(warm, "mem_numpy_MB"),
            "numba_imported": med(warm, "mem_numba_MB"),
            "kernels_loaded": med(warm, "mem_kernels_MB"),
        },
    }


class Longhand:
    """An updater whose step is the NumPy path: the 'before' of the epoch benchmark."""

    def __init__(self, updater):
        self.updater = updater

    def step(self, params, grads, state, batch):
        self.updater.step(params, grads, state, batch, longhand=True)


def epoch(mnist_dir: str, rows: int, pairs: int) -> dict:
    """One epoch of average mode's local steps on a `rows`-row shard, longhand against fused."""
    from dist_mnist import schedule
    from dist_mnist.data.mnist import load_split
    from dist_mnist.nn.model import init_params
    from dist_mnist.nn.steps import Batcher, local_steps

    images, labels, _ = load_split(mnist_dir, "train")
    images, labels = images[:rows], labels[:rows]
    batcher = Batcher(images, labels, BATCH)
    perm = schedule.epoch_permutation(123, 0, rows, partition=0)
    batches = schedule.local_batches(perm, 0, BATCH, schedule.n_batches(rows, BATCH))
    nesterovs = Nesterovs(LR, MU, L2)
    start = init_params([784, 1000, 10], 123)
    clocks = {"wall": time.perf_counter, "cpu": time.process_time}  # cpu: this process only, less load noise
    times: dict[str, dict[str, list[float]]] = {c: {"numpy": [], "numba": []} for c in clocks}
    finals = {}
    for _ in range(pairs):
        for name, updater in (("numpy", Longhand(nesterovs)), ("numba", nesterovs)):
            params, state = copy(start), nesterovs.init_state(start)
            t = {c: clock() for c, clock in clocks.items()}
            local_steps(params, state, updater, batcher, batches)
            for c, clock in clocks.items():
                times[c][name].append(clock() - t[c])
            finals[name] = params
    same = all(np.array_equal(finals["numpy"][k].view(np.uint32), finals["numba"][k].view(np.uint32)) for k in start)
    out = {"rows": rows, "steps": len(batches), "pairs": pairs, "bit_identical": same}
    for c, ts in times.items():
        med = {name: statistics.median(v) for name, v in ts.items()}
        saved = statistics.median(a - b for a, b in zip(ts["numpy"], ts["numba"]))  # pair by pair: drift cancels
        out[c] = {
            "seconds": ts,
            "median_s": med,
            "min_s": {name: min(v) for name, v in ts.items()},
            "ratio_numba_to_numpy": med["numba"] / med["numpy"],
            "median_saved_s_of_pairs": saved,
            "saved_ms_per_step": saved / len(batches) * 1e3,
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mnist-dir", default=os.environ.get("MNIST_DIR"), help="the IDX files (default $MNIST_DIR)")
    ap.add_argument("--blocks", type=int, default=10, help="blocks of the step timing (candidates in turn)")
    ap.add_argument("--reps", type=int, default=50, help="timed updates per candidate per block")
    ap.add_argument("--startup-runs", type=int, default=5)
    ap.add_argument("--pairs", type=int, default=3, help="epochs per path, alternating")
    ap.add_argument("--rows", type=int, default=30_000)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "updater.json"))
    args = ap.parse_args()
    result = provenance("updater.py")
    if fused.kernels() is None:
        raise SystemExit("numba is not importable here: install the project (pip install -e .) first")
    params, grads = problem(0, pool=8)
    nesterovs = Nesterovs(LR, MU, L2)
    steps = candidates(nesterovs)
    sgd = {
        "numpy": lambda p, g, s: Sgd(LR, L2).step(p, g, s, BATCH, longhand=True),
        "numba": lambda p, g, s: Sgd(LR, L2).step(p, g, s, BATCH),
    }
    result["shapes"] = {k: list(s) for k, s in SHAPES.items()}
    result["step"] = {
        "nesterovs": time_steps(steps, params, grads, args.blocks, args.reps),
        "sgd": time_steps(sgd, params, grads, args.blocks, args.reps),
    }
    result["bit_identical_30_steps"] = {
        "nesterovs": bit_identical(steps, params, grads, 30),
        "sgd": bit_identical(sgd, params, grads, 30),
    }
    result["start_up"] = start_up(args.startup_runs)
    if args.mnist_dir:
        result["epoch"] = epoch(args.mnist_dir, args.rows, args.pairs)
    result["loadavg_after"] = loadavg()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(out)
    print(
        json.dumps(
            {k: result[k] for k in ("step", "bit_identical_30_steps", "start_up", "epoch") if k in result}, indent=1
        )
    )


if __name__ == "__main__":
    main()
