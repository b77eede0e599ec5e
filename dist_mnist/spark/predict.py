"""Scoring at scale: a trained model's predictions for a Parquet dataset, written as Parquet.

The dataset has our layout's features: a binary `image` column (n_in bytes a row, divided by
255) or an array<float|double> `features` column (n_in values a row, as given).

The forward pass runs on the executors, vectorised per Arrow batch (`mapInArrow`); the
parameters ship once per task in a broadcast. The output keeps every input column and adds
`prediction` (double) and `probability` (array<float>, one entry per class). It is written to
a temporary sibling directory and renamed into place through Hadoop's filesystem layer, so
hdfs:// and s3a:// work like local paths, a failed job leaves nothing, and an existing output
is never replaced unless asked.
"""

from __future__ import annotations

from urllib.parse import unquote

import numpy as np

from dist_mnist.artifacts import load_model
from dist_mnist.data.parquet import features_of, images_of, local_path
from dist_mnist.nn.model import layer_sizes_of, logits_of, softmax, to_inputs
from dist_mnist.spark import hadoopfs


def probabilities(params, images: np.ndarray) -> np.ndarray:
    """Softmax of the logits, float32 (n, n_classes), max subtracted first."""
    return softmax(logits_of(params, to_inputs(images)))


# each row's file and its row number in that file (Parquet's hidden metadata columns), for errors
FILE, ROW = "__dist_mnist_file", "__dist_mnist_row"


def located_rows(batch, column: str, n_in: int) -> np.ndarray:
    """The features of a batch (uint8 pixels or float32); a bad row's error names its file and
    its row counted from that file's start (a batch may span files)."""
    rows_of = images_of if column == "image" else features_of
    try:
        return rows_of(batch.column(column), "", n_in=n_in)
    except ValueError:  # find the row: check each run of consecutive rows of one file
        files, rows = batch.column(FILE).to_pylist(), batch.column(ROW).to_numpy()
        cuts = [i for i in range(1, len(files)) if files[i] != files[i - 1] or rows[i] != rows[i - 1] + 1]
        for start, stop in zip([0, *cuts], [*cuts, len(files)]):
            rows_of(batch.column(column).slice(start, stop - start), local_path(unquote(files[start])), int(rows[start]), n_in)
        raise


def make_batch_fn(bc, column: str, n_in: int):
    """mapInArrow's function: each batch with `prediction` and `probability` appended (and
    the location columns dropped)."""

    def run(batches):
        import pyarrow as pa

        for batch in batches:
            probs = probabilities(bc.value, located_rows(batch, column, n_in))  # (n, C)
            n, C = probs.shape
            probability = pa.FixedSizeListArray.from_arrays(pa.array(probs.ravel()), C).cast(pa.list_(pa.float32()))
            prediction = pa.array(probs.argmax(axis=1).astype(np.float64))
            keep = [i for i, name in enumerate(batch.schema.names) if name not in (FILE, ROW)]
            yield pa.RecordBatch.from_arrays([*(batch.column(i) for i in keep), prediction, probability],
                                             names=[*(batch.schema.names[i] for i in keep), "prediction", "probability"])

    return run


def predict_to_parquet(spark, run_dir: str, data: str, out: str, overwrite: bool = False) -> int:
    """Score the Parquet dataset `data` with RUN's model into Parquet at `out`; the rows written."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, BinaryType, DoubleType, FloatType, StructField, StructType

    params, _ = load_model(run_dir)
    if hadoopfs.exists(spark, out) and not overwrite:  # before reading anything
        raise FileExistsError(f"{out}: already exists (pass --overwrite to replace it)")
    try:
        df = spark.read.parquet(data)
    except Exception as e:  # noqa: BLE001 - Spark's AnalysisException names the path
        raise ValueError(f"{data}: cannot be read as Parquet ({str(e).splitlines()[0]})") from None
    n_in = layer_sizes_of(params)[0]
    types = {f.name: f.dataType for f in df.schema.fields}
    if isinstance(types.get("image"), BinaryType):
        column = "image"
    elif isinstance(types.get("features"), ArrayType) and isinstance(types["features"].elementType, (FloatType, DoubleType)):
        column = "features"
    else:
        found = {name: t.simpleString() for name, t in types.items()}
        raise ValueError(f"{data}: needs a binary column 'image' ({n_in} bytes a row) or an array<float> column "
                         f"'features' ({n_in} values a row); found {found}")
    clash = [c for c in ("prediction", "probability") if c in df.columns]
    if clash:
        raise ValueError(f"{data}: already has column(s) {clash}; rename them before scoring")
    schema = StructType([*df.schema.fields, StructField("prediction", DoubleType(), False),
                         StructField("probability", ArrayType(FloatType(), False), False)])
    bc = spark.sparkContext.broadcast(params)
    try:
        # --overwrite: the new output is complete before the old one goes
        with hadoopfs.replacing(spark, out, overwrite) as tmp:
            located = df.select("*", F.col("_metadata.file_path").alias(FILE), F.col("_metadata.row_index").alias(ROW))
            located.mapInArrow(make_batch_fn(bc, column, n_in), schema).write.parquet(tmp)
            rows = spark.read.parquet(tmp).count()
    finally:
        bc.destroy()
    return rows
