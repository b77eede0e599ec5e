"""Ratios, the markdown table and the accuracy-vs-time plot for run_all's results."""

from pathlib import Path

LABELS = {"dist-mnist": "dist-mnist (Spark local[2])", "pytorch": "PyTorch (1 process)", "mllib": "MLlib MLPC (L-BFGS)"}
BYTES_PER_ROW = 784 + 1  # uint8 pixels + uint8 label


def add_throughput(s: dict, n_train: int) -> None:
    """Set samples_per_second = training rows x passes / train seconds, in place."""
    n_train = s.get("train_rows") or n_train  # PyTorch reads the IDX files, not DATA
    # An L-BFGS iteration is one full-batch gradient, i.e. one pass (line searches may add more).
    passes = s.get("iterations") if s.get("system") == "mllib" else s.get("epochs")
    if s.get("status") == "ok" and passes and s.get("train_seconds"):
        s["samples_per_second"] = round(n_train * passes / s["train_seconds"], 1)


def _ratio(name: str, num: float | None, den: float | None, target: str, ok, detail: str) -> dict:
    """One comparison; value None when either side is missing."""
    value = num / den if num is not None and den else None
    return {"name": name, "value": None if value is None else round(value, 3), "target": target,
            "met": None if value is None else bool(ok(value)), "detail": detail}


def time_to_accuracy(curve: list, accuracy: float) -> float | None:
    """Time of the first curve point at or above accuracy (no interpolation)."""
    return next((t for t, acc in curve if acc >= accuracy), None)


def ratios(systems: dict, floor: dict, n_train: int) -> list[dict]:
    """The four target comparisons; missing inputs give value None, never an error."""
    dm, pt, ml = systems["dist-mnist"], systems["pytorch"], systems["mllib"]
    ok = lambda s: s.get("status") == "ok"  # noqa: E731
    out = [_ratio("dist-mnist wall / PyTorch wall (whole process)",
                  dm.get("process_seconds") if ok(dm) else None, pt.get("process_seconds") if ok(pt) else None,
                  "<= 1.0x", lambda v: v <= 1.0,
                  f"{dm.get('process_seconds')} s vs {pt.get('process_seconds')} s")]

    ml_acc, ml_t = (ml.get("accuracy"), ml.get("time_to_accuracy_seconds")) if ok(ml) else (None, None)
    dm_t = time_to_accuracy(dm.get("curve", []), ml_acc) if ok(dm) and ml_acc is not None else None
    # dist-mnist is only sampled at epoch ends, so dm_t overstates its time: the ratio is a lower bound.
    out.append(_ratio("MLlib time-to-accuracy / dist-mnist time-to-same-accuracy", ml_t, dm_t, ">= 20x",
                      lambda v: v >= 20.0,
                      f"accuracy {ml_acc}: MLlib {ml_t} s (prep + fit) vs dist-mnist {dm_t} s (first epoch end)"))

    round_ms = (floor.get("spark_round") or {}).get("median_ms")
    out.append(_ratio("dist-mnist per-round overhead / bare Spark round", dm.get("round_overhead_ms"), round_ms,
                      "<= 1.3x", lambda v: v <= 1.3,
                      f"{_fmt(dm.get('round_overhead_ms'))} ms (broadcast + aggregate, median of "
                      f"{(dm.get('round_breakdown') or {}).get('rounds')} rounds) vs {round_ms} ms floor"))

    # dist-mnist reports the uint8 size of what its shards hold (train and test); else train only
    data_bytes = (dm.get("round_breakdown") or {}).get("data_uint8_bytes") or n_train * BYTES_PER_ROW
    out.append(_ratio("executor shard memory / uint8 data size", dm.get("shard_memory_bytes"), data_bytes,
                      "<= 1.5x", lambda v: v <= 1.5,
                      f"{dm.get('shard_memory_bytes')} B (PSS of the shard mappings) vs {data_bytes} B of uint8 rows"))
    return out


def _fmt(v, digits: int = 1) -> str:
    """A number for the table, or a dash."""
    if v is None:
        return "-"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def markdown(systems: dict, floor: dict, comparisons: list[dict], settings: dict) -> str:
    """The results as markdown: systems, target ratios, floors."""
    lines = [f"# dist-mnist benchmark ({settings['epochs']} epochs, {settings['n_train']} training rows"
             f"{', quick' if settings['quick'] else ''})", "",
             "| system | status | wall s (process) | train s | test accuracy | samples/s | note |",
             "|---|---|---:|---:|---:|---:|---|"]
    for key, s in systems.items():
        note = s.get("note", "")
        if key == "mllib" and s.get("status") == "ok":
            note = (f"{s.get('iterations')} L-BFGS iterations; prep {s.get('prep_seconds')} s; "
                    f"{s.get('stopped')}; BLAS {s.get('blas')}")
        lines.append(f"| {LABELS.get(key, key)} | {s.get('status')} | {_fmt(s.get('process_seconds'))} | "
                     f"{_fmt(s.get('train_seconds'))} | {_fmt(s.get('accuracy'), 4)} | "
                     f"{_fmt(s.get('samples_per_second'), 0)} | {note} |")
    lines += ["", "| comparison | ratio | target | met | detail |", "|---|---:|---|---|---|"]
    for c in comparisons:
        met = {True: "yes", False: "NO", None: "n/a"}[c["met"]]
        value = "-" if c["value"] is None else f"{c['value']:.2f}x"
        lines.append(f"| {c['name']} | {value} | {c['target']} | {met} | {c['detail']} |")
    lines += ["", "Floors:"]
    if floor.get("status") == "ok":
        for threads, rates in floor["gemm_gflops"].items():
            lines.append(f"- float32 GEMM, {threads.replace('_', ' ')}: "
                         + ", ".join(f"{k} {v} GFLOP/s" for k, v in rates.items()))
        r = floor.get("spark_round", {})
        lines.append(f"- bare Spark round on {r.get('master')} ({r.get('floats')} float32 broadcast + "
                     f"treeAggregate): median {r.get('median_ms')} ms, min {r.get('min_ms')} ms "
                     f"over {r.get('rounds')} rounds")
        lines.append(f"- one epoch of GEMMs at the best rate: {floor.get('epoch_gemm_seconds_at_best')} s")
    else:
        lines.append(f"- {floor.get('note', 'not measured')}")
    lines += ["", "Train seconds and curves start when each system starts training: dist-mnist at train(), "
              "PyTorch after loading data, MLlib at data preparation (prep + one fit's seconds)."]
    return "\n".join(lines) + "\n"


def plot(systems: dict, path: Path) -> None:
    """Test accuracy against seconds since training start, one line per system."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, s in systems.items():
        if s.get("status") == "ok" and s.get("curve"):
            t, acc = zip(*s["curve"])
            ax.plot(t, acc, marker="o", markersize=3, label=LABELS.get(key, key))
    ax.set_xscale("log")  # MLlib is expected to sit an order of magnitude to the right
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())  # unlabelled minor ticks: no overlapping digits
    for axis_fmt in (ax.xaxis.set_major_formatter, ax.xaxis.set_minor_formatter):
        axis_fmt(matplotlib.ticker.StrMethodFormatter("{x:g}"))  # 20, not 2x10^1
    ax.set_xlabel("seconds since training start (log scale)")
    ax.set_ylabel("test accuracy")
    ax.set_title("MNIST 784-1000-10 MLP: test accuracy vs wall time")
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
