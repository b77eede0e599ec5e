"""Classification metrics from mergeable confusion counts, and DL4J's Evaluation.stats() text.

Pure NumPy. Counts are int64 (n_classes, n_classes) indexed [actual][predicted], so the
counts of partitions simply add. Macro averages skip classes whose ratio is 0/0, as DL4J does.
"""

from __future__ import annotations

import numpy as np


def confusion_counts(actual: np.ndarray, predicted: np.ndarray, n_classes: int = 10) -> np.ndarray:
    """Counts (n_classes, n_classes) int64 indexed [actual][predicted]."""
    flat = np.asarray(actual, np.int64) * n_classes + np.asarray(predicted, np.int64)
    return np.bincount(flat, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def merge_counts(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Counts of two disjoint sets of examples."""
    return a + b


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num/den per class, NaN where den is 0 (the 0/0 classes a macro average skips)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.maximum(den, 1), np.nan)


def scores(counts: np.ndarray) -> dict:
    """Accuracy, per-class precision/recall/F1 and their macro averages (NaN-skipping)."""
    counts = np.asarray(counts, dtype=np.int64)
    tp = np.diag(counts).astype(np.float64)
    precision = _ratio(tp, counts.sum(axis=0))  # column sums: predicted as the class
    recall = _ratio(tp, counts.sum(axis=1))  # row sums: actually the class
    f1 = _ratio(2 * precision * recall, precision + recall)
    f1 = np.where(np.isnan(precision) | np.isnan(recall), np.nan, np.nan_to_num(f1))
    total = int(counts.sum())

    def macro(per_class: np.ndarray) -> float:
        kept = per_class[~np.isnan(per_class)]
        return float(kept.mean()) if len(kept) else float("nan")

    return {
        "examples": total,
        "accuracy": float(tp.sum() / total) if total else float("nan"),
        "precision": macro(precision),
        "recall": macro(recall),
        "f1": macro(f1),
        "per_class": {
            "precision": [None if np.isnan(p) else float(p) for p in precision],
            "recall": [None if np.isnan(r) else float(r) for r in recall],
            "f1": [None if np.isnan(f) else float(f) for f in f1],
        },
    }


def stats_text(counts: np.ndarray) -> str:
    """A report in the layout of DL4J's Evaluation.stats()."""
    counts = np.asarray(counts, dtype=np.int64)
    n = len(counts)
    s = scores(counts)
    lines = [""]
    for actual in range(n):
        for pred in range(n):
            if counts[actual, pred]:
                lines.append(
                    f"Examples labeled as {actual} classified by model as {pred}: {counts[actual, pred]} times"
                )
    skipped = [c for c in range(n) if s["per_class"]["precision"][c] is None]
    lines += [
        "",
        "",
        "==========================Scores========================================",
        f" # of classes:    {n}",
        f" Accuracy:        {s['accuracy']:.4f}",
        f" Precision:       {s['precision']:.4f}",
        f" Recall:          {s['recall']:.4f}",
        f" F1 Score:        {s['f1']:.4f}",
        f"Precision, recall & F1: macro-averaged (equally weighted avg. of {n} classes);",
        "F1 is the mean of the per-class F1 scores, not F1 of the mean precision and recall.",
    ]
    if skipped:
        lines.append(f"Classes never predicted (0/0 precision, skipped from the macro average): {skipped}")
    lines += ["========================================================================", ""]
    lines.append("=========================Confusion Matrix=========================")
    width = max(5, len(str(counts.max())) + 1)
    lines.append("".join(f"{c:>{width}}" for c in range(n)))
    lines.append("-" * (width * n))
    for actual in range(n):
        row = "".join(f"{v:>{width}}" for v in counts[actual])
        lines.append(f"{row} | {actual} = {actual}")
    lines.append("")
    lines.append("Confusion matrix format: Actual (rowClass) predicted as (columnClass) N times")
    lines.append("==================================================================")
    return "\n".join(lines)
