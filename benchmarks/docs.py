"""Write the benchmark figures into docs/performance.md and docs/scaling.md, from benchmarks/results/*.json.

Each generated block sits between `<!-- BEGIN generated: NAME -->` and `<!-- END generated: NAME -->`
and is replaced whole; nothing in it is typed by hand. Also draws results/workers.png.

    python benchmarks/docs.py            # after the benchmark scripts have written their JSON
"""

from __future__ import annotations

import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def load(name: str) -> dict | None:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else None


def pct(x) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def workers_block(w: dict, scale: dict | None) -> str:
    by_w = {p["W"]: p for p in (scale or {}).get("predictions", [])}
    earlier = sorted({(r["date"], r["command"]) for r in w["runs"] if r.get("command", w["command"]) != w["command"]})
    lines = [
        f"Measured {w['date']} with `python benchmarks/{w['command']}` (in-process transport, one process "
        "per W; the same round functions as on Spark, bit-identical by test), default config, seed 123"
        + "".join(
            f"; W = {', '.join(str(r['workers']) for r in w['runs'] if r.get('command') == cmd)} "
            f"kept from {date}'s `python benchmarks/{cmd}`"
            for date, cmd in earlier
        )
        + ":",
        "",
        "| W | local learning rate | rounds / epoch | after 5 | after 10 | after 15 epochs | epochs to 97.1% "
        "| predicted time to 97.1% on 10 Gbit/s |",
        "|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in w["runs"]:
        if "error" in r:
            lines.append(f"| {r['workers']} | failed: {r['error']} | | | | | | |")
            continue
        acc = r["test_accuracy"]
        pred = by_w.get(r["workers"], {})
        # a prediction made for other epochs or rounds than this run's is stale: rerun scaling_barrier.py
        fresh = (
            pred.get("epochs_to_971") == r["epochs_to_target"] and pred.get("rounds_per_epoch") == r["rounds_per_epoch"]
        )
        t = f"{pred['time_to_971_barrier_s']:.1f} s" if pred.get("time_to_971_barrier_s") and fresh else "-"
        lines.append(
            f"| {r['workers']} | {r['local_learning_rate']:g} | {r['rounds_per_epoch']} | {pct(acc[4])} | "
            f"{pct(acc[9])} | {pct(acc[14])}{' (' + pct(acc[-1]) + f' after {len(acc)})' if len(acc) > 15 else ''}"
            f" | {r['epochs_to_target'] or 'not reached'} | {t} |"
        )
    return "\n".join(lines)


def study_block(runs: list[dict]) -> str:
    """Every run of the many-worker study (results/workers-study.jsonl), in the order run."""
    lines = [
        "Every study run, in the order run (`benchmarks/results/workers-study.jsonl`, appended by "
        "`python benchmarks/workers.py --study LABEL [--rule RULE] [--set ...]`; in-process transport, "
        "15 epochs, seed 123, single runs; wall time of the whole process on the shared 2-core machine):",
        "",
        "| W | what was tried | rule, settings | rounds / epoch | after 5 | after 10 | after 15 epochs "
        "| best | epochs to 97.1% | wall s |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        if "error" in r:
            lines.append(f"| {r['workers']} | {r['label']} | failed: {r['error']} | | | | | | | |")
            continue
        acc = r["test_accuracy"]
        how = ", ".join([f"`{r['rule']}`", *(f"`{x}`" for x in r["sets"])])
        lines.append(
            f"| {r['workers']} | {r['label']} | {how} | {r['rounds_per_epoch']} | {pct(acc[4])} | "
            f"{pct(acc[9])} | {pct(acc[14])} | {pct(max(acc))} | {r['epochs_to_target'] or 'not reached'} "
            f"| {r['process_seconds']:.0f} |"
        )
    return "\n".join(lines)


def speed_refused(s: dict) -> str | None:
    """Why speed.json's pairs may not be rendered as a table: measured without the idle wait, or
    with a run that began at or above its load threshold (other work shared the cores); None if fine."""
    if "idle_below" not in s:
        return f"Not rendered: speed.json ({s['date']}) was measured before speed.py waited for an idle machine."
    busy = [f"{name} pair {p['pair']}" for name, x in s["systems"].items() for p in x["pairs"] if p.get("busy")]
    if not busy:
        return None
    return (
        f"Not rendered: in speed.json ({s['date']}) a run of {', '.join(busy)} began with the 1-minute load "
        f"at or above {s['idle_below']:g} (the machine was not idle); rerun benchmarks/speed.py on an idle machine."
    )


def speed_block(s: dict) -> str:
    refused = speed_refused(s)
    if refused:
        return refused
    what = {
        "default": "average mode, 2 workers (local steps + outer Nesterov), `local[2]`",
        "sync": "sync mode: the tutorial's exact math on 2 workers, `local[2]`",
        "sync-inprocess": "sync mode, same round functions without Spark, one process",
    }
    optimizers = sorted(
        {
            p["pytorch"].get("optimizer", "loop")
            for x in s["systems"].values()
            for p in x["pairs"]
            if p["pytorch"]["status"] == "ok"
        }
    )
    cross = [peer for x in s["systems"].values() for peer in x.get("peers", {}) if peer != "pytorch"]
    by_fastest = any("fastest_pytorch" in p for x in s["systems"].values() for p in x["pairs"])
    lines = [
        f"Measured {s['date']} with `{s['command']}` ({s['machine']}). Each pair is one PyTorch process "
        f"(benchmarks/torch_reference.py, 2 threads, torch's {'/'.join(optimizers)} SGD), "
        + (
            f"the cross-checks ({', '.join(dict.fromkeys(cross))}"
            + (
                "; which script runs first rotates from pair to pair"
                if any("order" in p for x in s["systems"].values() for p in x["pairs"])
                else ""
            )
            + "), "
            if cross
            else ""
        )
        + "and then one dist-mnist process, each timed whole (JVM, imports and data loading included); the "
        + (
            "ratio is dist-mnist / the faster of the two PyTorch scripts within the pair"
            if by_fastest
            else "ratio is dist-mnist / PyTorch within the pair"
        )
        + ", and the figure is the median of the pairs' ratios. Each run began only once the 1-minute load "
        f"average was below {s['idle_below']:g} (the load it began at is in the table below).",
        "",
        "| system | pairs | median ratio | median s (PyTorch, dist-mnist) | median accuracy (PyTorch, dist-mnist) "
        "| target | met |",
        "|---|---:|---:|---|---|---|---|",
    ]
    for name, x in s["systems"].items():
        if "median_ratio" not in x:
            lines.append(f"| {name} | 0 of {len(x['pairs'])} finished | | | | | |")
            continue
        target = f"<= {x['target_ratio']:.1f}x at >= {pct(x['min_accuracy'])}" if "target_ratio" in x else "-"
        met = ("yes" if x["target_met"] else "**no**") if "target_met" in x else "-"
        if "goal_ratio" in x:
            target += f" (goal <= {x['goal_ratio']:.1f}x)"
            met += f" (goal: {'yes' if x['goal_met'] else 'no'})"
        lines.append(
            f"| {name}: {what.get(name, '')} | {x['pairs_ok']} | **{x['median_ratio']:.2f}x** | "
            f"{x['median_pytorch_seconds']:.1f}, {x['median_system_seconds']:.1f} | "
            f"{pct(x['median_pytorch_accuracy'])}, {pct(x['median_accuracy'])} | {target} | {met} |"
        )
    lines += cross_check_lines(s)
    lines += [
        "",
        "Every pair:",
        "",
        "| system | pair | PyTorch (the faster) | load before it | its s | load before dist-mnist | dist-mnist s "
        "| accuracy (PyTorch, dist-mnist) | ratio | dist-mnist rounds phase s "
        "| per round: compute, overhead, update (ms) |",
        "|---|---:|---|---:|---:|---:|---:|---|---:|---:|---|",
    ]
    for name, x in s["systems"].items():
        for p in x["pairs"]:
            t, d = ({"pytorch": p["pytorch"]} | p.get("peers", {}))[p.get("fastest_pytorch", "pytorch")], p["system"]
            ts = f"{t['process_seconds']:.1f}" if t["status"] == "ok" else "failed"
            ds = f"{d['process_seconds']:.1f}" if d["status"] == "ok" else "failed"
            acc = ", ".join(pct(r["accuracy"]) if r["status"] == "ok" else "-" for r in (t, d))
            rounds = f"{d['phases_seconds'].get('rounds', 0):.1f}" if d["status"] == "ok" else "-"
            per_round = (
                f"{d['round_ms']['executor']:.1f}, {d['round_ms']['overhead']:.1f}, {d['round_ms']['update']:.1f}"
                if d["status"] == "ok"
                else "-"
            )
            ratio = f"{p['ratio']:.2f}x" if "ratio" in p else "-"
            script = {"pytorch": "torch_reference.py", "pytorch-plain": "torch_plain.py"}.get(
                p.get("fastest_pytorch", "pytorch"), ""
            )
            lines.append(
                f"| {name} | {p['pair']} | {script} | {load_text(t['loadavg_before'])} | {ts} | "
                f"{load_text(d['loadavg_before'])} | {ds} | {acc} | {ratio} | {rounds} | {per_round} |"
            )
    verdicts = []
    for name, x in s["systems"].items():
        if "target_met" in x:
            goal = (
                f" (the goal of <= {x['goal_ratio']:.1f}x: {'met' if x['goal_met'] else 'not met'})"
                if "goal_ratio" in x
                else ""
            )
            verdicts.append(
                f"{name} {x['median_ratio']:.2f}x at {pct(x['median_accuracy'])} against <= "
                f"{x['target_ratio']:.1f}x at >= {pct(x['min_accuracy'])}: "
                f"**{'met' if x['target_met'] else 'not met'}**{goal}"
            )
    if verdicts:
        lines += ["", "Targets, by the median of the pairs: " + "; ".join(verdicts) + "."]
    busiest = max(
        (
            r["loadavg_before"][0]
            for x in s["systems"].values()
            for p in x["pairs"]
            for r in (p["pytorch"], p["system"])
        ),
        default=0.0,
    )
    cores = int(s["machine"].split()[0])
    if busiest > cores:
        lines += [
            "",
            f"The 1-minute load average reached {busiest:.2f} on {cores} cores before some of these runs: "
            "the runs follow one another, and a run's own two busy cores leave the average near 2 for the next "
            "one; above that, other work shared the machine and both sides of a pair ran slower than on an idle "
            "one (pairing and the median damp that noise, they do not remove it).",
        ]
    return "\n".join(lines)


PEER_NAMES = {
    "pytorch": "PyTorch, the peer (benchmarks/torch_reference.py)",
    "pytorch-plain": "PyTorch as its examples write the loop (benchmarks/torch_plain.py)",
    "numpy": "dist-mnist's own math in one process, no Spark (benchmarks/numpy_reference.py)",
}


def cross_check_lines(s: dict) -> list[str]:
    """The cross-check peers run in the same pairs: their medians and dist-mnist's ratio to each."""
    rows = [(name, peer, c) for name, x in s["systems"].items() for peer, c in x.get("peers", {}).items()]
    if all(peer == "pytorch" for _, peer, _ in rows):
        return []
    if not rows:
        return []
    lines = [
        "",
        "Cross-checks, run in the same pairs (dist-mnist / peer within each pair, the median over the pairs):",
        "",
        "| system | peer | pairs | median peer s (whole) | its training loop s | median peer accuracy "
        "| median ratio (dist-mnist / peer) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {name} | {PEER_NAMES.get(peer, peer)} | {c['pairs_ok']} | {c['median_seconds']:.1f} | "
        f"{c.get('median_train_seconds', float('nan')):.1f} | {pct(c['median_accuracy'])} | "
        f"{c['median_ratio']:.2f}x |"
        for name, peer, c in rows
    ]
    return lines


def kernels_block(k: dict) -> str:
    """NumPy's BLAS against the PyTorch wheel's at the tutorial's layer-0 shapes."""
    blas = ", ".join(f"{b['internal_api']} {b['version']} ({b['architecture']})" for b in k["numpy"]["blas"])
    lines = [
        f"Measured {k['date']} with `{k['command']}` ({k['machine']}, {k['cpu']}; load "
        f"{load_text(k['loadavg_before'])} before): float32 GEMM, best of 5 trials, NumPy {k['numpy']['version']} "
        f"on {blas} against torch {k['torch']['version']} (MKL), in one process.",
        "",
        "| threads | product | NumPy GFLOP/s | torch GFLOP/s | torch / NumPy |",
        "|---:|---|---:|---:|---:|",
    ]
    for threads, shapes in k["gflops"].items():
        for shape, r in shapes.items():
            lines.append(
                f"| {threads.split('_')[1]} | {shape} | {r['numpy']:.1f} | {r['torch']:.1f} | "
                f"{r['torch'] / r['numpy']:.2f} |"
            )
    steps = k.get("torch_step_ms_threads_2")
    if steps:
        lines += [
            "",
            "A whole PyTorch training step (forward, backward, SGD step; batch 128, 2 threads, median of "
            "5 interleaved reps of 200 steps) with torch's SGD implementations: "
            + ", ".join(f"{impl} {ms:.2f} ms" for impl, ms in steps.items())
            + f". benchmarks/torch_reference.py uses fused; torch's default on CPU, the loop, is "
            f"{steps['loop'] / steps['fused']:.2f}x the fused step here.",
        ]
    layer0 = k.get("layer0_threads_1")
    if layer0:
        ms = layer0["ms_per_batch"]
        names = {
            "numpy_dense": "NumPy, dense GEMM",
            "numpy_active_columns": "NumPy on the batch's active columns (dist-mnist's dense path)",
            "torch_dense": "torch, dense GEMM",
            "sparse": "from each example's non-zero inputs (dist_mnist/nn/sparse.py, dist-mnist's default)",
        }
        lines += [
            "",
            f"Layer 0's two products (X @ W0 and X^T @ dH) on real MNIST batches of {layer0['batch']} "
            f"({layer0['non_zero']:.1%} of the inputs non-zero), one thread, median ms a batch:",
            "",
            "| how | ms a batch | / sparse |",
            "|---|---:|---:|",
            *[f"| {names.get(n, n)} | {v:.2f} | {v / ms['sparse']:.2f} |" for n, v in ms.items()],
        ]
    return "\n".join(lines)


def rounds_block(b: dict) -> str:
    return "\n".join(
        [
            f"Measured {b['date']} with `{b['command']}`: {b['payload_bytes_each_way'] / 1e6:.2f} MB to each of "
            f"{b['workers']} workers and back, no compute.",
            "",
            "| transport | median | p90 | min | rounds |",
            "|---|---:|---:|---:|---:|",
            *[
                f"| {name} | {b[key]['median_ms']:.1f} ms | {b[key]['p90_ms']:.1f} ms | {b[key]['min_ms']:.1f} ms | "
                f"{b[key]['rounds']} |"
                for name, key in (("persistent barrier stage + ZeroMQ", "barrier"), ("one Spark job a round", "jobs"))
            ],
            "",
            f"Ratio barrier / Spark job: **{b['ratio_barrier_to_jobs']:.3f}x**.",
        ]
    )


CHANNELS = {
    "plain": "PLAIN over TCP: the baseline (secret in clear, nothing encrypted)",
    "curve": "CURVE over TCP: a cluster",
    "ipc": "Unix socket + vectors through /dev/shm: a local master",
    "ipc-frames": "Unix socket, vectors in its frames: a local master without room in /dev/shm",
}


def channels_block(c: dict) -> str:
    """What a round costs over each channel, against the PLAIN channel CURVE replaced."""
    sizes = c["sizes"]
    lines = [
        f"Measured {c['date']} with `{c['command']}` ({c['machine']['cores']} cores; load (1 min) "
        f"{load_text(c.get('loadavg_before'))} before, {load_text(c.get('loadavg_after'))} after): a driver and "
        f"{c['workers']} worker processes on this machine, the round's vector each way and no compute; median "
        f"(p90) of {c['rounds']} rounds of each channel and size, the channels alternating in {c['blocks']} "
        "blocks.",
        "",
        "| channel | "
        + " | ".join(f"{mode}: {s['bytes_each_way'] / 1e6:.2f} MB each way | / PLAIN" for mode, s in sizes.items())
        + " |",
        "|---|" + "---:|---:|" * len(sizes),
    ]
    for kind, name in CHANNELS.items():
        cells = []
        for s in sizes.values():
            if kind not in s:
                cells += ["-", "-"]
                continue
            ratio = 1.0 if kind == "plain" else s[f"ratio_{kind}_to_plain"]
            cells += [f"{s[kind]['median_ms']:.1f} ms ({s[kind]['p90_ms']:.1f})", f"{ratio:.2f}x"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    extra = ", ".join(
        f"{s['curve']['median_ms'] - s['plain']['median_ms']:.1f} ms in {mode} mode" for mode, s in sizes.items()
    )
    lines += ["", f"Here CURVE costs a round more than PLAIN by {extra} (medians)."]
    busiest = max(x[0] for x in (c.get("loadavg_before") or [0], c.get("loadavg_after") or [0]))
    if busiest > c["machine"]["cores"]:
        lines.append(
            f"The 1-minute load average reached {busiest:.2f} on {c['machine']['cores']} cores: other work "
            "shared the machine, so every channel's times are longer than on an idle one."
        )
    return "\n".join(lines)


REDUCE_PART = 1 << 18  # the chain's part (dist_mnist.channel.messages.CHUNK_BYTES)


def reduce_block(tcp: dict, ipc: dict | None, channels: dict | None) -> str:
    """The driver's inbound bytes and the round time, reduce = driver against chain; predicted at W = 64, 256."""
    lines = [
        f"Measured {tcp['date']} with `{tcp['command']}`"
        + (f" and `{ipc['command']}`" if ipc else "")
        + f" ({tcp['machine']['cores']} cores; load (1 min) {load_text(tcp.get('loadavg_before'))} before, "
        f"{load_text(tcp.get('loadavg_after'))} after"
        + (
            f"; the Unix socket's run {load_text(ipc.get('loadavg_before'))} and {load_text(ipc.get('loadavg_after'))}"
            if ipc
            else ""
        )
        + "): a driver and W worker processes on this machine, "
        f"sync mode's {tcp['vector_bytes'] / 1e6:.2f} MB vector, no compute; median (p90) of "
        f"{tcp['rounds']} rounds of each design and W, the designs alternating in {tcp['blocks']} blocks.",
        "",
        "| channel | W | driver receives: driver | chain | round: driver | chain | chain / driver |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    ipc_label = "Unix socket" + (
        " (driver design: vectors through /dev/shm)" if (ipc or {}).get("shared_memory") else ""
    )
    for name, r in (("CURVE over TCP", tcp), (ipc_label, ipc)):
        for W, row in (r or {}).get("by_workers", {}).items():
            d, c = row["driver"], row["chain"]
            lines.append(
                f"| {name} | {W} | {d['driver_received_bytes'] / 1e6:.2f} MB | "
                f"{c['driver_received_bytes'] / 1e6:.2f} MB | {d['median_ms']:.1f} ms ({d['p90_ms']:.1f}) | "
                f"{c['median_ms']:.1f} ms ({c['p90_ms']:.1f}) | {row['ratio_chain_to_driver_ms']:.2f}x |"
            )
    if not channels or "sizes" not in channels:
        return "\n".join(lines)
    sync = channels["sizes"]["sync"]
    curve_ns = (
        1e6
        * (sync["curve"]["median_ms"] - sync["plain"]["median_ms"])
        / (2 * channels["workers"] * sync["bytes_each_way"])
    )
    per_byte = 8 / 10e9 + curve_ns * 1e-9  # 10 Gbit/s, plus encrypting and decrypting a byte (CURVE)
    lines += [
        "",
        f"Predicted inbound time of a round on 10 Gbit/s with CURVE ({curve_ns:.2f} ns a byte to encrypt and "
        "decrypt, from channels.json above; 0.8 ns a byte on the wire): reduce = driver takes W x S through "
        "the driver's link, W x S x (0.8 + CURVE) ns; the chain streams S through W hops in parts of "
        f"{REDUCE_PART // 1024} KiB, then worker W-1 sends S to the driver in one message: (2 S + (W-1) x part) "
        "x (0.8 + CURVE) ns, of which only the parts grow with W. The CURVE figure was measured under load, "
        "so both columns are pessimistic alike. Both still send W x S out (the outbound "
        "column), which the chain does not change.",
        "",
        "| W | S | inbound: driver | inbound: chain | outbound (both) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for W in (64, 256):
        for S in (sync["bytes_each_way"], 2 * sync["bytes_each_way"]):
            driver, chain = W * S * per_byte, (2 * S + (W - 1) * REDUCE_PART) * per_byte
            lines.append(f"| {W} | {S / 1e6:.2f} MB | {driver:.2f} s | {1000 * chain:.0f} ms | {driver:.2f} s |")
    return "\n".join(lines)


def scaling_block(sb: dict) -> str:
    f = sb["fit"]
    again = f" (predictions redone {sb['predicted']} with `--reuse`)" if sb.get("predicted") else ""
    lines = [
        f"Measured {sb['date']} with `{sb['command']}`{again}. Fit on loopback: T = {1000 * f['a_s']:.2f} ms + "
        f"{1e9 * f['b_s_per_worker_byte']:.2f} ns per byte per worker.",
        "",
        "| W | S | measured | model |",
        "|---:|---:|---:|---:|",
    ]
    for p in sb["points"]:
        lines.append(f"| {p['W']} | {p['S_bytes'] / 1e6:.2f} MB | {p['barrier_ms']:.1f} ms | {p['model_ms']:.1f} ms |")
    if sb.get("check_w2"):
        ch = sb["check_w2"]
        lines += [
            "",
            f"Check at W = 2: the model's epoch on loopback is {ch['model_epoch_s']:.2f} s, the measured one "
            f"{ch['measured_epoch_s']:.2f} s ({ch['source']}).",
        ]
    lines += [
        "",
        "Predicted on a 10 Gbit/s cluster, default config (6.36 MB each way a worker, 235 local steps "
        "a round, or W/32 rounds an epoch beyond 32 workers, "
        f"t_step {1000 * sb['t_step_s']:.1f} ms):",
        "",
        "| W | round overhead | epoch |",
        "|---:|---:|---:|",
    ]
    for p in sb["predictions"]:
        lines.append(f"| {p['W']} | {1000 * p['barrier_round_s']:.0f} ms | {p['epoch_barrier_s']:.2f} s |")
    return "\n".join(lines)


def load_text(values: list[float] | None) -> str:
    """A load average triple as its 1-minute figure, or a dash."""
    return "-" if not values else f"{values[0]:.2f}"


def mllib_block(m: dict, speed: dict | None) -> str:
    mach = m["machine"]
    lines = [
        f"Measured {m['date']} with `{m['command']}` ({mach['cores']} cores, {mach.get('cpu') or 'CPU unknown'}; "
        f"Spark {m['versions']['spark']}, master {m['settings']['master']}, BLAS {m.get('blas', 'unknown')}), "
        "one fit a process, one process after another:",
        "",
        "| maxIter | L-BFGS iterations | wall s (whole process) | fit s | data preparation s | test accuracy "
        "| load (1 min) before, after |",
        "|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in m["rows"]:
        if r["status"] != "ok":
            lines.append(f"| {r['max_iter']} | failed: {r['error']} | {r['wall_seconds']:.1f} | | | | |")
            continue
        lines.append(
            f"| {r['max_iter']} | {r['iterations']} | {r['wall_seconds']:.1f} | {r['fit_seconds']:.1f} | "
            f"{r['prep_seconds']:.1f} | {pct(r['test_accuracy'])} | "
            f"{load_text(r['loadavg_before'])}, {load_text(r['loadavg_after'])} |"
        )
    lines += ["", f"- Schedule ended: {m.get('stopped') or 'still running'}."]
    lines += [f"- {note}" for note in m.get("notes", [])]
    busiest = max((x[0] for r in m["rows"] for x in (r["loadavg_before"], r["loadavg_after"])), default=0.0)
    if busiest > mach["cores"]:
        lines.append(
            f"- The 1-minute load average reached {busiest:.2f} on {mach['cores']} cores during these fits: "
            "other work shared the machine, so their times are longer than on an idle one."
        )
    default = ((speed or {}).get("systems") or {}).get("default")
    if default and "median_system_seconds" in default:
        lines.append(
            f"- For scale: dist-mnist's default run (the speed table above, {speed['date']}) takes "
            f"{default['median_system_seconds']:.1f} s whole process (median of {default['pairs_ok']}) "
            f"to {pct(default['median_accuracy'])}."
        )
    return "\n".join(lines)


def mb(n: int | None) -> str:
    return "-" if not n else f"{n / 1e6:.1f}"


def memory_block(mem: dict) -> str:
    data = mem["data_uint8_bytes"]
    x = lambda n: f"{mb(n)} ({n / data:.2f}x)"  # noqa: E731
    lines = [
        f"Measured {mem['date']} with `{mem['command']}` ({mem['machine']['cores']} cores): while each run "
        f"trains, /proc/PID/smaps_rollup of every process under its spark-submit is read every "
        f"{mem['sample_seconds']} s; the kernel peak is /proc/PID/status VmHWM. MB are 10^6 bytes; the data is "
        f"{mb(data)} MB (train + test, uint8 pixels and labels); (x) is against it. Peaks of the sum over a kind's "
        "processes at one instant; PSS counts a shared page once over all processes, RSS in each.",
        "",
        "| W | epochs | master | Python workers: PSS, sum | one worker: RSS (kernel peak), PSS | pyspark.daemon: PSS "
        "| JVM (gateway and executor): RSS (kernel peak), PSS | driver Python: RSS (kernel peak), PSS "
        "| whole tree: PSS | what the trainer reports: shard PSS; driver RSS |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in mem["runs"]:
        if r["returncode"] != 0:
            lines.append(
                f"| {r['workers']} | {r['epochs']} | {r['master']} | failed: {r.get('error', '')} | | | | | | |"
            )
            continue
        kinds = r["kinds"]

        def total(kind: str, kinds: dict = kinds) -> dict:
            return kinds.get(kind, {}).get("peak_sum", {})

        def one(kind: str, pss=mb, kinds: dict = kinds) -> str:
            o = kinds.get(kind, {}).get("peak_one_process", {})
            return f"{mb(o.get('Rss'))} ({mb(o.get('VmHWM'))}), {pss(o.get('Pss', 0))}"

        workers = total("python_worker")
        own = r.get("trainer_reports", {})
        lines.append(
            f"| {r['workers']} | {r['epochs']} | {r['master']} | {x(workers.get('Pss', 0))} over "
            f"{workers.get('processes', 0)} | {one('python_worker')} | {mb(total('python_daemon').get('Pss'))} "
            f"| {one('jvm', x)} | {one('driver_python')} | {x(r['peak_total_pss']['Pss'])} "
            f"| {mb(own.get('shard_memory_bytes'))}; {mb(own.get('driver_peak_rss_bytes'))} |"
        )
    lines += [""] + [f"- {note}" for note in mem.get("notes", [])]
    ok = [r for r in mem["runs"] if r["returncode"] == 0]
    for long in ok:  # a longer run of the same W checks that the short runs caught the peaks
        short = min(
            (r for r in ok if r["workers"] == long["workers"] and r["epochs"] < long["epochs"]),
            key=lambda r: r["epochs"],
            default=None,
        )
        if short:

            def change(f, long: dict = long, short: dict = short) -> float:
                return 100 * (f(long) / f(short) - 1)

            lines.append(
                f"- W = {long['workers']} for {long['epochs']} epochs against {short['epochs']}: whole tree PSS "
                f"{change(lambda r: r['peak_total_pss']['Pss']):+.1f}%, Python workers' PSS "
                f"{change(lambda r: r['kinds']['python_worker']['peak_sum']['Pss']):+.1f}%."
            )
    return "\n".join(lines)


def ml_block(transform: dict | None, fit: dict | None) -> str:
    """The Estimator/Model figures: transform throughput against MLlib's model, fit from vectors."""
    lines = []
    if transform:
        lines += [
            f"Transform throughput (`{transform['command']}`, {transform['date']}, {transform['master']}, "
            f"load {load_text(transform.get('loadavg_before'))} before; weights: {transform['weights']}; "
            f"{transform['what']}; {transform['runs']} runs each after a warm-up):",
            "",
            "| input | rows | ours, rows/s best (median) | MLlib's model, rows/s best (median) | ratio best (median) |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, label in (("test_10k", "MNIST test set"), ("train_x10", "training set x 10, from Parquet")):
            r = transform["results"].get(name)
            if r:
                ours, ml = r["dist_mnist"], r["mllib"]
                lines.append(
                    f"| {label} | {r['rows']:,} | {ours['rows_per_second_best']:,} "
                    f"({ours['rows_per_second_median']:,}) | {ml['rows_per_second_best']:,} "
                    f"({ml['rows_per_second_median']:,}) | {r['speedup_best']:.1f}x ({r['speedup_median']:.1f}x) |"
                )
    if fit:
        if lines:
            lines.append("")
        m = fit["machine"]
        lines.append(
            f"Fit from a VectorUDT DataFrame (`{fit['command']}`, {fit['date']}, {m['master']} on {m['cores']} "
            f"cores, load {load_text(m.get('loadavg_before'))} before): {fit['rows']:,} rows (train + test "
            f"flagged by `validationIndicatorCol`), {fit['epochs']} epochs, layers {fit['layers']}, "
            f"{fit['workers']} workers: test accuracy **{pct(fit['test_accuracy_evaluator'])}** by "
            f"`MulticlassClassificationEvaluator` on `transform`'s output (target {pct(fit['target'])}); "
            f"fit {fit['fit_seconds']:.1f} s, of which staging (DataFrame -> our Parquet layout) "
            f"{fit['staging_seconds']:.1f} s = {100 * fit['staging_share_of_training']:.1f}% of the "
            f"training's {fit['train_seconds']:.1f} s."
        )
    return "\n".join(lines)


def tracking_block(t: dict) -> str:
    return (
        f"Measured {t['date']} with `{t['command']}` ({t['what']}; load {load_text(t['loadavg_before'])} before, "
        f"{load_text(t['loadavg_after'])} after): **{t['median_plain_seconds']:.1f} s without tracking, "
        f"{t['median_tracked_seconds']:.1f} s with `--mlflow`**, a median difference of "
        f"{t['median_overhead_seconds']:.1f} s ({t['overhead_percent']}%), of which opening the store and "
        f"starting the run took {t['median_tracking_start_seconds']:.1f} s; the rest is importing MLflow and, "
        f"at the end, the report, the ONNX graph and the model. Creating a new store (MLflow's schema "
        f"migrations) took {t['store_creation_seconds']:.1f} s, once.{pair_spread(t['runs'])}"
    )


def pair_spread(runs: list[dict]) -> str:
    """The pairs' differences (tracked - plain), so that a noisy median shows as one."""
    plain = [r["process_seconds"] for r in runs if not r["tracked"]]
    tracked = [r["process_seconds"] for r in runs if r["tracked"]]
    diffs = ", ".join(f"{b - a:+.1f} s" for a, b in zip(plain, tracked))
    return f" The pairs' differences: {diffs}."


def connect_block(c: dict) -> str:
    """connect.json: classic against Connect on local[2], a round on either transport and the tutorial."""
    import statistics

    def cell(case: dict, kind: str, key: str, fmt: str) -> str:
        return fmt.format(statistics.median(r[key] for r in case["runs"][kind]))

    loads = [
        r["loadavg"][0]
        for case in ("round_barrier", "round_jobs", "tutorial")
        if case in c
        for runs in c[case]["runs"].values()
        for r in runs
        if r.get("loadavg")
    ]
    during = f", {min(loads):.2f}-{max(loads):.2f} after single runs" if loads else ""
    lines = [
        (
            f"Measured {c['date']} with `{c['command']}` ({c['machine']['cores']} cores, Spark "
            f"{c['versions']['spark']}; classic `--master local[2]` against `--remote` to a Connect server on "
            f"`local[2]` started by the script; {c['pairs']} classic/Connect pairs, medians; load (1 min) "
            f"{load_text(c['loadavg_before'])} before, {load_text(c['loadavg_after'])} after{during}: the machine "
            "was shared, so the absolute times carry its load):"
        ),
        "",
        "| measurement | classic | Connect | Connect / classic |",
        "|---|---:|---:|---:|",
    ]
    for case, name in (
        ("round_barrier", f"persistent barrier stage, sync, {c['rounds']} rounds"),
        ("round_jobs", f"one Spark job a round (the fallback), sync, {c['job_rounds']} rounds"),
    ):
        b = c[case]
        lines.append(
            f"| {name}: mean round | {b['median']['classic']:.1f} ms | {b['median']['connect']:.1f} ms | "
            f"**{b['ratio_connect_to_classic']:.2f}x** |"
        )
        classic, connect = (
            cell(b, kind, "overhead_median_after_first_ms", "{:.1f}") for kind in ("classic", "connect")
        )
        lines.append(
            f"| {name}: overhead, median after the first round | {classic} ms | {connect} ms | "
            f"{float(connect) / float(classic):.2f}x |"
        )
    if "tutorial" in c:
        tut = c["tutorial"]
        lines.append(
            f"| tutorial (15 epochs, W = 2): whole process (classic: with its JVM's start; Connect: the server already "
            f"up) | {tut['median']['classic']:.1f} s | "
            f"{tut['median']['connect']:.1f} s | **{tut['ratio_connect_to_classic']:.2f}x** |"
        )
        classic, connect = (cell(tut, kind, "accuracy", "{:.4f}") for kind in ("classic", "connect"))
        lines.append(f"| tutorial: test accuracy (median) | {pct(float(classic))} | {pct(float(connect))} | |")
        pairs = zip(tut["runs"]["classic"], tut["runs"]["connect"], strict=True)
        lines += [
            "",
            "Tutorial pairs, each run's wall seconds and the load (1 min) right after it (classic ran first "
            "in each pair: a load that falls during a pair favours Connect, so the ratio is not Connect's "
            "cost alone): "
            + "; ".join(
                f"classic {a['wall_seconds']:.1f} s ({load_text(a['loadavg'])}), Connect "
                f"{b['wall_seconds']:.1f} s ({load_text(b['loadavg'])})"
                for a, b in pairs
            )
            + ".",
        ]
    said = {
        re.sub(r"(tcp://[^:]+:)\d+|(ipc://\S+)", lambda m: (m[1] or "ipc://") + "...", r["transport_line"])
        for kind in ("classic", "connect")
        for r in c["round_barrier"]["runs"][kind]
    }
    lines += [
        "",
        "Transport lines of the barrier-stage runs (classic, then Connect): "
        + "; ".join(f"`{s}`" for s in sorted(said, key=lambda s: "tcp://" in s))
        + ".",
    ]
    return "\n".join(lines)


PROFILE_SHARES = (
    "GEMM",
    "gradients, other than GEMM",
    "update",
    "batching",
    "evaluation",
    "data loading",
    "transport",
    "imports",
    "Spark start",
    "other",
)


def profiles_block(p: dict) -> str:
    """Each profile's shares of samples by category, executors and driver apart."""
    head = " | ".join(PROFILE_SHARES)
    lines = [
        f"Measured {p['date']} with `{p['command']}` ({p['epochs']} epochs, W = 2 on local[2]; py-spy at 100 Hz with "
        f"native frames, where a thread blocked in a system call, such as the driver waiting for a round's "
        f"answer in the transport, can count as running; load {load_text(p['loadavg_before'])} "
        f"before, {load_text(p['loadavg_after'])} after). Shares of each side's samples:",
        "",
        f"| run | update | side | samples | {head} | wall s |",
        "|---|---|---|---:|" + "---:|" * (len(PROFILE_SHARES) + 1),
    ]
    for r in p["profiles"]:
        for side in ("executors", "driver"):
            s = r["shares"][side]
            cells = " | ".join(f"{100 * s.get(k, 0.0):.0f}%" for k in PROFILE_SHARES)
            lines.append(
                f"| {r['run']} | {r['update']} | {side} | {s['samples']:,} | {cells} | {r['process_seconds']:.1f} |"
            )
    return "\n".join(lines)


UPDATERS = {
    "numpy": "NumPy, longhand (the path without numba)",
    "numpy_out": "NumPy into a preallocated temporary",
    "numpy_blocked": "NumPy, 64K elements at a time",
    "numba": "numba, fused (what runs where numba is installed)",
    "numexpr": "numexpr",
}


def updater_block(u: dict) -> str:
    """One update step of each candidate, numba's start-up, and an epoch of local steps, NumPy against fused."""
    lines = [
        f"Measured {u['date']} with `{u['command']}` ({u['machine']['cores']} cores, {u['machine']['cpu']}; "
        f"one BLAS thread; load {load_text(u['loadavg_before'])} before, {load_text(u['loadavg_after'])} after): "
        "one whole update of the tutorial's float32 arrays, median (p90) of single timed calls, the candidates "
        "taken in turn; each also run 30 steps from the same start and compared with NumPy's bit for bit.",
        "",
        "| updater | candidate | median ms (p90) | / NumPy | same bits after 30 steps |",
        "|---|---|---:|---:|---|",
    ]
    for updater, candidates in u["step"].items():
        for name, r in candidates.items():
            same = "yes" if u["bit_identical_30_steps"][updater][name] else "**no**"
            lines.append(
                f"| {updater} | {UPDATERS.get(name, name)} | {r['median_ms']:.2f} ({r['p90_ms']:.2f}) | "
                f"{r['ratio_to_numpy']:.2f}x | {same} |"
            )
    st, ep = u["start_up"], u["epoch"]
    lines += [
        "",
        f"numba's start-up in a fresh process (median of {st['runs']}): import {st['import_numba_s']:.2f} s, the "
        f"first kernels {st['first_kernels_cold_cache_s']:.2f} s with an empty cache (compile) and "
        f"{st['first_kernels_warm_cache_s']:.2f} s with a warm one; RSS {st['rss_MB']['numpy']['VmRSS']:.0f} MB "
        f"with NumPy alone, {st['rss_MB']['kernels_loaded']['VmRSS']:.0f} MB with the kernels loaded. An epoch of "
        f"{ep['steps']} local steps on a {ep['rows']:,}-row shard of MNIST ({ep['pairs']} pairs, alternating; "
        f"{'the same final parameters bit for bit' if ep['bit_identical'] else 'the final parameters DIFFER'}): "
        f"median wall {ep['wall']['median_s']['numpy']:.2f} s NumPy, {ep['wall']['median_s']['numba']:.2f} s fused "
        f"({ep['wall']['ratio_numba_to_numpy']:.2f}x), {ep['wall']['saved_ms_per_step']:.2f} ms saved a step.",
    ]
    return "\n".join(lines)


def plot_workers(w: dict, scale: dict | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for r in w["runs"]:
        if "test_accuracy" in r:
            acc = r["test_accuracy"]
            ax1.plot(range(1, len(acc) + 1), [100 * a for a in acc], marker=".", label=f"W = {r['workers']}")
    ax1.axhline(97.1, color="gray", ls="--", lw=1)
    ax1.set(xlabel="epoch", ylabel="test accuracy (%)", ylim=(88, 98.5), title="Default config: accuracy by epoch")
    ax1.legend(fontsize=8, ncol=2)
    if scale:
        pts = [p for p in scale["predictions"] if p.get("time_to_971_barrier_s")]
        ax2.plot([p["W"] for p in pts], [p["time_to_971_barrier_s"] for p in pts], marker="o")
        ax2.set(
            xscale="log",
            yscale="log",
            xlabel="workers W",
            ylabel="seconds of training",
            title="Predicted time to 97.1% on 10 Gbit/s (persistent rounds)",
        )
        ax2.set_xticks([p["W"] for p in pts], [str(p["W"]) for p in pts])
    fig.tight_layout()
    fig.savefig(RESULTS / "workers.png", dpi=110)


def replace_block(path: Path, name: str, body: str) -> None:
    text = path.read_text()
    pattern = re.compile(rf"(<!-- BEGIN generated: {name} -->\n).*?(<!-- END generated: {name} -->)", re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(f"{path}: no generated block {name!r}")
    path.write_text(pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text))


PERFORMANCE, SCALING = "docs/performance.md", "docs/scaling.md"


def main() -> None:
    """Render every block whose results file exists, into the pages that show it."""
    workers, scale, speed, rounds = (
        load("workers.json"),
        load("scaling-barrier.json"),
        load("speed.json"),
        load("rounds-W2.json"),
    )
    targets: dict[str, list[tuple[str, str]]] = {PERFORMANCE: [], SCALING: []}
    if workers:
        plot_workers(workers, scale)
        targets[PERFORMANCE].append(("workers", workers_block(workers, scale)))
        targets[SCALING].append(("workers", workers_block(workers, scale)))
    study = RESULTS / "workers-study.jsonl"
    if study.exists():
        runs = [json.loads(line) for line in study.read_text().splitlines() if line.strip()]
        targets[SCALING].append(("workers-study", study_block(runs)))
    if speed:
        targets[PERFORMANCE].append(("speed", speed_block(speed)))
    kernels = load("kernels.json")
    if kernels:
        targets[PERFORMANCE].append(("kernels", kernels_block(kernels)))
    updater = load("updater.json")
    if updater:
        targets[PERFORMANCE].append(("updater", updater_block(updater)))
    if rounds:
        targets[PERFORMANCE].append(("rounds", rounds_block(rounds)))
        targets[SCALING].append(("rounds", rounds_block(rounds)))
    if scale:
        targets[SCALING].append(("scaling-barrier", scaling_block(scale)))
    channels = load("channels.json")
    if channels and "sizes" in channels:
        targets[PERFORMANCE].append(("channels", channels_block(channels)))
        targets[SCALING].append(("channels", channels_block(channels)))
    reduce = load("reduce.json")
    if reduce:
        targets[SCALING].append(("reduce", reduce_block(reduce, load("reduce-ipc.json"), channels)))
    mllib, memory = load("mllib.json"), load("memory.json")
    if mllib:
        targets[PERFORMANCE].append(("mllib", mllib_block(mllib, speed)))
    if memory:
        targets[PERFORMANCE].append(("memory", memory_block(memory)))
    transform, fit = load("transform.json"), load("fit-vectors.json")
    if transform or fit:
        targets[PERFORMANCE].append(("ml", ml_block(transform, fit)))
    tracking = load("tracking.json")
    if tracking:
        targets[PERFORMANCE].append(("tracking", tracking_block(tracking)))
    connect = load("connect.json")
    if connect:
        targets[PERFORMANCE].append(("connect", connect_block(connect)))
    profiles = load("profiles.json")
    if profiles:
        targets[PERFORMANCE].append(("profiles", profiles_block(profiles)))
    for rel, blocks in targets.items():
        for name, body in blocks:
            replace_block(REPO / rel, name, body)
            print(f"{rel}: {name}")


if __name__ == "__main__":
    main()
