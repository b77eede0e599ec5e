"""`dist-mnist report RUN`: PNG figures and one HTML page about a finished run, in RUN/report/.

Reads the run's JSON files (model.json, metrics.json, evaluation.json) and, for the grid of
misclassified digits, model.npz and the test split (10,000 rows: NumPy, no Spark). Needs
matplotlib (the `report` extra).
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from dist_mnist.data.parquet import read_files
from dist_mnist.driver.timings import PARTS
from dist_mnist.files.atomic import atomic_write_bytes, read_json
from dist_mnist.files.model import MODEL_JSON, load_model
from dist_mnist.hints import Log
from dist_mnist.metrics import scores
from dist_mnist.nn.model import predict

# metrics.json "rounds": a round's parts as RoundTimings records them; a run of another version
# may hold other parts (any entry with a "mean_ms" is shown after these)
PHASES = PARTS
MAX_MISCLASSIFIED = 40


def _pyplot():
    """matplotlib.pyplot on the file-only Agg backend, or a one-line RuntimeError."""
    try:
        import matplotlib
    except ImportError:
        raise RuntimeError(
            "dist-mnist report needs matplotlib: pip install 'dist-mnist[report]' (or pip install 'matplotlib>=3.7')"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> str:
    """Write a figure as PNG atomically; return its file name for the page."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    fig.clf()
    atomic_write_bytes(path, buf.getvalue())
    return path.name


def round_phases(rounds: dict) -> dict[str, float]:
    """{phase: mean ms per round} of what metrics.json recorded, known phases first."""
    extra = [k for k, v in rounds.items() if k not in PHASES and isinstance(v, dict) and "mean_ms" in v]
    found = {}
    for k in [*PHASES, *extra]:
        entry = rounds.get(k)
        if isinstance(entry, dict) and isinstance(entry.get("mean_ms"), (int, float)):
            found[k] = float(entry["mean_ms"])
    return found


def misclassified(
    predicted: np.ndarray, images: np.ndarray, labels: np.ndarray, limit: int = MAX_MISCLASSIFIED
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images, true labels, predicted labels) of the first `limit` wrong predictions."""
    wrong = np.flatnonzero(predicted != labels)[:limit]
    return images[wrong], labels[wrong], predicted[wrong]


def parquet_files_of(data: str | os.PathLike, recorded_in: Path | None = None) -> list[str]:
    """The Parquet part files of DATA/test, in order; `recorded_in`: the model.json that named DATA."""
    files = sorted(str(p) for p in Path(data, "test").glob("*.parquet"))
    if not files:
        found = f"{recorded_in}'s data.path, where the run was trained" if recorded_in else "--data"
        raise FileNotFoundError(
            f"{Path(data, 'test')}: no Parquet files (DATA from {found}; pass --data DATA, the directory ingest wrote)"
        )
    return files


def plot_training(plt, epochs: list[dict], path: Path) -> str:
    """Train loss and test accuracy, against epoch and against wall time."""
    epoch = [h.get("epoch", i + 1) for i, h in enumerate(epochs)]
    wall = [h.get("elapsed_seconds") for h in epochs]
    if any(w is None for w in wall):  # older runs: add up the epochs' own wall times
        wall = list(np.cumsum([h.get("wall_seconds", 0.0) for h in epochs]))
    loss = [h.get("train_loss", np.nan) for h in epochs]
    accuracy = [100 * h["test_accuracy"] if h.get("test_accuracy") is not None else np.nan for h in epochs]
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.5), sharey="row")
    for col, (x, xlabel) in enumerate(((epoch, "epoch"), (wall, "wall time (s, since the start)"))):
        axes[0, col].plot(x, loss, "o-", color="tab:blue")
        axes[1, col].plot(x, accuracy, "o-", color="tab:green")
        axes[1, col].set_xlabel(xlabel)
        for ax in axes[:, col]:
            ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("mean train loss")
    axes[1, 0].set_ylabel("test accuracy (%)")
    fig.suptitle("Training")
    return _save(fig, path)


def plot_confusion(plt, counts: np.ndarray, path: Path) -> str:
    """Heatmap of the confusion matrix, colored by the share of each actual class."""
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    n = len(counts)
    fig, ax = plt.subplots(figsize=(7, 6))
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for a in range(n):
        for p in range(n):
            if counts[a, p]:
                ax.text(
                    p,
                    a,
                    str(counts[a, p]),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if share[a, p] > 0.5 else "black",
                )
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title("Confusion matrix (counts; color: share of the actual class)")
    fig.colorbar(image, ax=ax, fraction=0.046)
    return _save(fig, path)


def plot_per_class(plt, per_class: dict, path: Path) -> str:
    """Precision, recall and F1 of each class, side by side."""
    names = {"precision": "precision", "recall": "recall", "f1": "F1"}
    values = {k: np.array([np.nan if v is None else v for v in per_class[k]]) for k in names}
    n = len(values["f1"])
    fig, ax = plt.subplots(figsize=(10, 3.8))
    for i, (k, label) in enumerate(names.items()):
        ax.bar(np.arange(n) + (i - 1) * 0.27, 100 * values[k], width=0.27, label=label)
    low = np.nanmin(np.concatenate(list(values.values()))) if n else 1.0
    ax.set_ylim(max(0.0, 100 * low - 2), 100.5)
    ax.set_xticks(range(n))
    ax.set_xlabel("class")
    ax.set_ylabel("%")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(axis="y", alpha=0.3)
    ax.set_title("Per-class precision, recall and F1")
    return _save(fig, path)


def plot_rounds(plt, phases: dict[str, float], n_rounds, path: Path) -> str:
    """Mean milliseconds a round spent in each phase."""
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(phases) + 1.2))
    names = list(phases)[::-1]
    ax.barh(names, [phases[k] for k in names], color="tab:orange")
    for y, k in enumerate(names):
        ax.text(phases[k], y, f" {phases[k]:,.1f} ms", va="center", fontsize=9)
    ax.set_xlabel("mean ms per round")
    ax.set_xlim(0, 1.2 * max(phases.values(), default=1) or 1)
    ax.set_title(f"Where a round's time went ({n_rounds} rounds)")
    return _save(fig, path)


def plot_misclassified(plt, images: np.ndarray, actual: np.ndarray, predicted: np.ndarray, path: Path) -> str:
    """A grid of misclassified test digits, titled true -> predicted."""
    cols = 10
    rows = max(1, -(-len(images) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.1, rows * 1.3), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(images):
            ax.imshow(images[i].reshape(28, 28), cmap="gray_r", vmin=0, vmax=255)
            ax.set_title(f"{actual[i]} → {predicted[i]}", fontsize=9, color="tab:red")
    fig.suptitle("Misclassified test digits (true → predicted)")
    return _save(fig, path)


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _percent(value) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


class RunFiles(NamedTuple):
    """What a report reads: the model, its run's JSON files and the test split."""

    params: dict[str, np.ndarray]
    model: dict  # model.json
    metrics: dict  # metrics.json
    counts: np.ndarray  # evaluation.json's confusion matrix, int64 (C, C) [actual][predicted]
    images: np.ndarray  # DATA/test, (n, 784) uint8
    labels: np.ndarray  # (n,)


def read_run(run_dir: Path, data: str | os.PathLike | None = None) -> RunFiles:
    """RUN's model and JSON files, and the test split of `data` (default: model.json's data.path)."""
    params, model = load_model(run_dir)
    metrics = read_json(run_dir / "metrics.json")
    evaluation = read_json(run_dir / "evaluation.json")
    counts = np.asarray(evaluation.get("confusion", []), dtype=np.int64)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or not counts.size:
        raise ValueError(f"{run_dir / 'evaluation.json'}: 'confusion' must be a square matrix of counts")
    recorded_in = None if data else run_dir / MODEL_JSON
    data = data or model.get("data", {}).get("path")
    if data is None:
        raise ValueError(f"{run_dir / MODEL_JSON}: no data.path recorded (pass --data DATA)")
    images, labels = read_files(parquet_files_of(data, recorded_in))
    return RunFiles(params, model, metrics, counts, images, labels)


def draw_figures(plt, run: RunFiles, s: dict, phases: dict[str, float], out: Path) -> list[tuple[str, str]]:
    """The report's PNGs, written into `out`: [(title, file name)], in the page's order."""
    predicted = predict(run.params, run.images)
    wrong = misclassified(predicted, run.images, run.labels)
    figures = [
        ("Training", plot_training(plt, run.metrics.get("epochs", []), out / "training.png")),
        ("Confusion matrix", plot_confusion(plt, run.counts, out / "confusion.png")),
        ("Per-class scores", plot_per_class(plt, s["per_class"], out / "per_class.png")),
        (
            f"Misclassified test digits (the first {len(wrong[0])} of {int((predicted != run.labels).sum())})",
            plot_misclassified(plt, *wrong, out / "misclassified.png"),
        ),
    ]
    if phases:
        n_rounds = run.metrics.get("rounds", {}).get("rounds", "?")
        figures.append(("Time per round", plot_rounds(plt, phases, n_rounds, out / "rounds.png")))
    plt.close("all")
    return figures


def _page(run_dir: Path, run: RunFiles, s: dict, phases: dict[str, float], figures: list[tuple[str, str]]) -> str:
    """The report's HTML: the summary, the figures, per-class scores and round phases in numbers."""
    config = run.model.get("config", {})
    summary = [
        ["test accuracy", _percent(s["accuracy"])],
        ["precision (macro)", _percent(s["precision"])],
        ["recall (macro)", _percent(s["recall"])],
        ["F1 (macro)", _percent(s["f1"])],
        ["test examples", str(s["examples"])],
        ["layers", str(run.model.get("layer_sizes"))],
    ]
    summary += [[k, str(config[k])] for k in ("mode", "epochs", "batch_size", "learning_rate") if k in config]
    per_class = [
        [str(c), *(_percent(s["per_class"][k][c]) for k in ("precision", "recall", "f1"))]
        for c in range(len(run.counts))
    ]
    rounds = run.metrics.get("rounds", {})
    timing = [[k, f"{v:,.1f}", f"{rounds[k].get('total_seconds', 0.0):,.2f}"] for k, v in phases.items()]
    timing_table = _table(["phase", "mean ms / round", "total s"], timing) if timing else "<p>not recorded</p>"
    sections = "".join(
        f'<h2>{html.escape(title)}</h2><img src="{name}" alt="{html.escape(title)}">' for title, name in figures
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>dist-mnist report: {html.escape(run_dir.name)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:3px 10px;text-align:right}}
img{{max-width:100%}}</style></head><body>
<h1>dist-mnist run {html.escape(str(run_dir))}</h1>
{_table(["", "value"], summary)}
{sections}
<h2>Per class, in numbers</h2>{_table(["class", "precision", "recall", "F1"], per_class)}
<h2>Round phases, in numbers</h2>{timing_table}
</body></html>
"""


def write_report(
    run_dir: str | os.PathLike,
    data: str | os.PathLike | None = None,
    log: Log = print,
    out: str | os.PathLike | None = None,
) -> Path:
    """Write RUN/report/*.png and RUN/report/index.html (or into `out`); return the page's path.

    `data` is the dataset directory (DATA, with DATA/test); by default model.json's data.path.
    """
    plt = _pyplot()
    run_dir = Path(run_dir)
    run = read_run(run_dir, data)  # every input checked before anything is written
    out = Path(out) if out is not None else run_dir / "report"
    out.mkdir(exist_ok=True)
    s = scores(run.counts)
    phases = round_phases(run.metrics.get("rounds", {}))
    figures = draw_figures(plt, run, s, phases, out)
    atomic_write_bytes(out / "index.html", _page(run_dir, run, s, phases, figures).encode())
    log(f"report written to {out / 'index.html'} ({len(figures)} figures)")
    return out / "index.html"
