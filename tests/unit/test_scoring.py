"""The one scoring path (dist_mnist.ml.scoring): its outputs' names, values and types, without a JVM."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow as pa

from dist_mnist.nn.model import init_params, logits_of, predict, softmax, to_inputs
from dist_mnist.scoring import FIELDS, Scores, arrow_columns, joined, output_fields, scores_of


def test_scores_are_named_as_the_output_columns_and_are_the_forward_pass():
    params = init_params([12, 6, 4], 1)
    X = np.random.default_rng(0).integers(0, 256, (30, 12)).astype(np.uint8)
    scores = scores_of(params, X)
    assert FIELDS == ("prediction", "probability", "rawPrediction")  # MLlib's classifier columns, in order
    logits = logits_of(params, to_inputs(X))
    np.testing.assert_array_equal(scores.rawPrediction, logits)
    np.testing.assert_array_equal(scores.probability, softmax(logits))
    np.testing.assert_array_equal(scores.prediction, predict(params, X).astype(np.float64))
    assert [a.dtype for a in scores] == [np.float64, np.float32, np.float32]


def test_joined_batches_and_their_arrow_columns():
    params = init_params([5, 3], 2)
    X = np.random.default_rng(1).normal(size=(7, 5)).astype(np.float32)
    whole, parts = scores_of(params, X), [scores_of(params, X[:3]), scores_of(params, X[3:])]
    for a, b in zip(joined(parts, 3), whole):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    empty = joined([], 3)
    assert [a.shape for a in empty] == [(0,), (0, 3), (0, 3)]
    columns = arrow_columns(whole, np.array([False, True, False, False, False, False, False]))
    assert [c.type for c in columns] == [pa.float64(), pa.list_(pa.float32()), pa.list_(pa.float32())]
    assert [c.null_count for c in columns] == [1, 1, 1] and columns[1][0].as_py() == whole.probability[0].tolist()
    assert [c.type for c in arrow_columns(empty)] == [c.type for c in columns]


def test_spark_output_types_are_those_of_the_arrow_columns():
    fields = output_fields(nullable=False)  # pyspark's types only: no JVM starts
    assert [(f.name, f.dataType.simpleString(), f.nullable) for f in fields] == [
        ("prediction", "double", False),
        ("probability", "array<float>", False),
        ("rawPrediction", "array<float>", False),
    ]
    assert all(f.nullable for f in output_fields()) and isinstance(Scores(*range(3)), tuple)


def test_predict_shares_the_scoring_path_without_importing_pyspark_ml_into_its_workers():
    code = (
        "import sys; import dist_mnist.spark.predict as p, dist_mnist.ml.scoring as s; "
        "assert p.scores_of is s.scores_of and p.FIELDS is s.FIELDS; "
        "print('pyspark.ml' in sys.modules); from dist_mnist.ml import MLPClassifier, MLPClassificationModel; "
        "print(MLPClassifier.__module__, MLPClassificationModel.__module__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "dist_mnist.ml.estimator", "dist_mnist.ml.model"]
