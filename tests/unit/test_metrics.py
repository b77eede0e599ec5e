"""Confusion counts, their merging, DL4J-style scores and the stats() text."""

import numpy as np
import pytest

from dist_mnist.metrics import confusion_counts, merge_counts, scores, stats_text

# 4 classes; class 3 is never predicted (its precision is 0/0)
ACTUAL = [0, 0, 0, 1, 1, 2, 2, 2, 3, 3]
PREDICTED = [0, 0, 1, 1, 1, 2, 0, 2, 2, 2]


def test_confusion_counts_are_actual_by_predicted():
    counts = confusion_counts(ACTUAL, PREDICTED, n_classes=4)
    assert counts.dtype == np.int64
    np.testing.assert_array_equal(counts, [[2, 1, 0, 0], [0, 2, 0, 0], [1, 0, 2, 0], [0, 0, 2, 0]])


def test_merge_counts_of_halves_equals_a_plain_count_of_the_whole():
    rng = np.random.default_rng(0)
    actual, predicted = rng.integers(0, 10, 1000), rng.integers(0, 10, 1000)
    by_hand = [[0] * 10 for _ in range(10)]
    for a, p in zip(actual, predicted):
        by_hand[a][p] += 1
    merged = merge_counts(
        confusion_counts(actual[:377], predicted[:377]), confusion_counts(actual[377:], predicted[377:])
    )
    np.testing.assert_array_equal(merged, by_hand)
    assert merged.sum() == 1000


def test_scores_by_hand():
    s = scores(confusion_counts(ACTUAL, PREDICTED, n_classes=4))
    assert s["examples"] == 10
    assert s["accuracy"] == pytest.approx(6 / 10)
    # precision per class: tp / predicted-as = 2/3, 2/3, 2/4, 0/0 (skipped)
    assert s["per_class"]["precision"][:3] == pytest.approx([2 / 3, 2 / 3, 1 / 2])
    assert s["per_class"]["precision"][3] is None
    assert s["precision"] == pytest.approx((2 / 3 + 2 / 3 + 1 / 2) / 3)
    # recall per class: tp / actually = 2/3, 2/2, 2/3, 0/2
    assert s["per_class"]["recall"] == pytest.approx([2 / 3, 1.0, 2 / 3, 0.0])
    assert s["recall"] == pytest.approx((2 / 3 + 1 + 2 / 3 + 0) / 4)
    # F1 per class: 2pr/(p+r); class 3 has no precision, so it is skipped too
    f1 = [2 * p * r / (p + r) for p, r in ((2 / 3, 2 / 3), (2 / 3, 1.0), (1 / 2, 2 / 3))]
    assert s["per_class"]["f1"][:3] == pytest.approx(f1)
    assert s["per_class"]["f1"][3] is None
    assert s["f1"] == pytest.approx(sum(f1) / 3)


def test_class_with_zero_precision_and_recall_counts_as_zero_f1():
    # class 1 is predicted (wrongly) and present (never found): p = 0/1, r = 0/1 -> F1 = 0
    s = scores(confusion_counts([0, 1], [1, 0], n_classes=2))
    assert s["per_class"]["f1"] == [0.0, 0.0]
    assert s["f1"] == 0.0 and s["accuracy"] == 0.0


def test_empty_counts_give_nan_not_an_error():
    s = scores(np.zeros((10, 10), np.int64))
    assert s["examples"] == 0 and np.isnan(s["accuracy"]) and np.isnan(s["precision"])


def test_stats_text_layout():
    actual = np.array([3, 3, 3, 5, 0, 1, 2, 4, 6, 7, 8, 9])
    predicted = np.array([5, 5, 3, 5, 0, 1, 2, 4, 6, 7, 8, 9])
    counts = confusion_counts(actual, predicted)
    text = stats_text(counts)
    lines = text.splitlines()
    assert "Examples labeled as 3 classified by model as 5: 2 times" in lines
    assert "Examples labeled as 3 classified by model as 3: 1 times" in lines
    assert "Examples labeled as 5 classified by model as 5: 1 times" in lines
    assert not any("classified by model as 4: 0 times" in line for line in lines)  # zeros omitted
    assert any(line.startswith("==========================Scores") for line in lines)
    assert " # of classes:    10" in lines
    # by hand: 10 of 12 right; class 5 is predicted 3 times (1 right), class 3 found 1 of 3 times;
    # precision and recall are 1 elsewhere, so both macro averages are (9 + 1/3) / 10, and F1 is
    # 2(1)(1/3)/(4/3) = 0.5 for classes 3 and 5, 1 for the other eight: 9 / 10
    assert " Accuracy:        0.8333" in lines
    assert " Precision:       0.9333" in lines
    assert " Recall:          0.9333" in lines
    assert " F1 Score:        0.9000" in lines
    assert any("Confusion Matrix" in line for line in lines)
    # one matrix row per actual class, e.g. actual 3: one 3, two 5s
    row3 = next(line for line in lines if line.endswith("| 3 = 3"))
    assert [int(v) for v in row3.split("|")[0].split()] == [0, 0, 0, 1, 0, 2, 0, 0, 0, 0]


def test_stats_text_names_classes_never_predicted():
    counts = confusion_counts(ACTUAL, PREDICTED, n_classes=4)
    assert "Classes never predicted (0/0 precision, skipped from the macro average): [3]" in stats_text(counts)
