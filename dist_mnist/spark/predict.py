"""Scoring at scale: a trained model's predictions for a Parquet dataset, written as Parquet.

The dataset has our layout's features (FeatureKind): a binary `image` column (n_in bytes a
row, divided by 255) or an array<float|double> `features` column (n_in values a row, as given).

The forward pass runs on the executors, vectorised per Arrow batch (`mapInArrow`); the
parameters ship once per task in a broadcast (classic) or in the function's closure (Spark
Connect, which has no broadcast). It is transform's (dist_mnist.ml.scoring): the
output keeps every input column and adds the same columns with the same names, `prediction`
(double), `probability` and `rawPrediction` (array<float>, one entry per class), as arrays
rather than transform's Vectors (Parquet for any reader). It is written to
a temporary sibling directory and renamed into place through Hadoop's filesystem layer, so
hdfs:// and s3a:// work like local paths, a failed job leaves nothing, and an existing output
is never replaced unless asked.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

from dist_mnist.data.features import FeatureKind
from dist_mnist.data.parquet import inputs_of
from dist_mnist.data.splits import read_footers
from dist_mnist.files.model import load_model, model_files
from dist_mnist.files.paths import local_path, refuse_overlap
from dist_mnist.nn.model import layer_sizes_of
from dist_mnist.scoring import FIELDS, Shipped, arrow_columns, joined, output_fields, scores_of
from dist_mnist.spark import hadoopfs
from dist_mnist.spark.executors import prepare_executors
from dist_mnist.spark.session import is_connect
from dist_mnist.worker_errors import USER_ERROR_TYPES, USER_ERRORS, FirstError, WorkerError

if TYPE_CHECKING:
    from dist_mnist.hints import SparkSession

FILE, ROW = "_dist_mnist_file", "_dist_mnist_row"  # each input row's file and row, dropped from the output
# a user error raised in a task, as the Python traceback in a failed job's message shows it
_TASK_ERROR = re.compile(r"^(?:\w+\.)*(ValueError|FileNotFoundError): (.+)$", re.MULTILINE)


def file_runs(batch) -> list[tuple[str, int, int, int]]:
    """(file, its first row counted from the file's start, start, stop) of each run of
    consecutive rows of one file in an Arrow batch (a batch may span files)."""
    import pyarrow.compute as pc

    files, rows = batch.column(FILE), batch.column(ROW).to_numpy()
    n = len(rows)
    if n == 0:
        return []
    breaks = np.diff(rows) != 1
    if n > 1:
        breaks |= pc.not_equal(files.slice(1), files.slice(0, n - 1)).to_numpy(zero_copy_only=False)
    starts = [0, *(np.flatnonzero(breaks) + 1).tolist()]
    return [(file_name(files[a].as_py()), int(rows[a]), a, b) for a, b in zip(starts, [*starts[1:], n])]


def file_name(uri: str) -> str:
    """A local path for Spark's file: URIs (percent-decoded), other URIs as they are."""
    from urllib.parse import unquote

    return unquote(local_path(uri)) if uri.startswith("file:") else uri


def located_inputs(batch, kind: FeatureKind, n_in: int):
    """The model inputs of a batch, run by run: (x, file, first_row) with x (n, n_in).

    Every check of predict's input goes through here, so its error names the file and the
    row counted from the file's start, not from the batch.
    """
    col = batch.column(kind.column)
    for file, first_row, start, stop in file_runs(batch):
        yield inputs_of(kind, col.slice(start, stop - start), file, first_row, n_in), file, first_row


def make_batch_fn(bc, kind: FeatureKind, n_in: int, errors):
    """mapInArrow's function: each batch with the scores (FIELDS) appended.

    Bad input (say a 783-byte image) is not raised: it goes to the `errors` accumulator, the
    task scores nothing more and ends well, so Spark neither logs a trace nor retries; the
    driver raises it once the job is over. With `errors` None (Spark Connect: no accumulators)
    the task raises it, its message naming the file and row, and the job fails with it.
    """

    def run(batches):
        import pyarrow as pa

        C = layer_sizes_of(bc.value)[-1]
        failed = False
        for batch in batches:
            if failed:
                continue  # read the rest of the partition's input, score none of it
            try:
                scores = joined([scores_of(bc.value, x) for x, _, _ in located_inputs(batch, kind, n_in)], C)
            except USER_ERROR_TYPES as e:
                if errors is None:
                    raise
                errors.add(WorkerError.of(e))
                failed = True
                continue
            columns = [(name, c) for name, c in zip(batch.schema.names, batch.columns) if name not in (FILE, ROW)]
            yield pa.RecordBatch.from_arrays(
                [c for _, c in columns] + arrow_columns(scores),
                names=[name for name, _ in columns] + list(FIELDS),
            )

    return run


def check_input(data: str) -> None:
    """A local `data` before Spark starts: it exists, is a split (not a dataset root) and
    every Parquet file's footer reads; one line naming the path otherwise. Other URIs are
    left to Spark's reader (pyarrow may not know their filesystem)."""
    if "://" in data and not data.startswith("file:"):
        return
    if not read_footers(data):
        raise ValueError(f"{data}: no Parquet files")


def input_kind(schema, data: str, n_in: int) -> FeatureKind:
    """Which features column of our layout the dataset `data` (its Spark schema) has, IMAGE
    first; a one-line ValueError naming `data` and its columns when it has neither."""
    from pyspark.sql.types import ArrayType, BinaryType

    types = {f.name: f.dataType for f in schema.fields}
    for kind in FeatureKind:
        data_type = types.get(kind.column)
        # binary or an array only: mapInArrow would hand a vector column over as a struct
        if isinstance(data_type, (BinaryType, ArrayType)) and FeatureKind.from_spark(data_type) is kind:
            return kind
    image, features = FeatureKind.IMAGE, FeatureKind.FEATURES
    found = {name: t.simpleString() for name, t in types.items()}
    raise ValueError(
        f"{data}: needs a binary column '{image.column}' ({n_in} {image.unit} a row) or an array<float> column "
        f"'{features.column}' ({n_in} {features.unit} a row); found {found}"
    )


def task_error(e: Exception) -> Exception:
    """The user error (ValueError, FileNotFoundError) a task raised, as the driver raises it: the
    last one the failed job's message shows; else `e` itself."""
    found = _TASK_ERROR.findall(str(e))
    return USER_ERRORS[found[-1][0]](found[-1][1].strip()) if found else e


def _input_frame(spark: SparkSession, data: str, n_in: int):
    """(the dataset with each row's file and row index, its FeatureKind, the output schema)."""
    from pyspark.sql.types import StructType

    check_input(data)
    try:
        df = spark.read.parquet(data)
    except Exception as e:  # noqa: BLE001 - Spark's AnalysisException names the path
        raise ValueError(f"{data}: cannot be read as Parquet ({str(e).splitlines()[0]})") from None
    kind = input_kind(df.schema, data, n_in)
    clash = [c for c in FIELDS if c in df.columns]
    if clash:
        raise ValueError(f"{data}: already has column(s) {clash}; rename them before scoring")
    schema = StructType([*df.schema.fields, *output_fields(nullable=False)])  # every row is scored
    meta = df.metadataColumn("_metadata")  # Spark's hidden per-row file and row index (Parquet)
    located = df.select("*", meta.getField("file_path").alias(FILE), meta.getField("row_index").alias(ROW))
    return located, kind, schema


def predict_to_parquet(spark: SparkSession, run_dir: str, data: str, out: str, overwrite: bool = False) -> int:
    """Score the Parquet dataset `data` with RUN's model into Parquet at `out`; the rows written.
    `spark`: a classic session or a Spark Connect one (whose paths this client must see too)."""
    params, _ = load_model(run_dir)
    data, out = hadoopfs.qualified(spark, data), hadoopfs.qualified(spark, out)
    refuse_overlap(out, "--out", {"--data": data, **model_files(run_dir)})
    if hadoopfs.exists(spark, out) and not overwrite:  # before reading anything
        raise FileExistsError(f"{out}: already exists (pass --overwrite to replace it)")
    prepare_executors(spark)
    n_in = layer_sizes_of(params)[0]
    located, kind, schema = _input_frame(spark, data, n_in)
    if is_connect(spark):  # no broadcast, no accumulator: the parameters in the closure, errors raised
        with hadoopfs.replacing(spark, out, overwrite) as tmp:
            try:
                located.mapInArrow(make_batch_fn(Shipped(params), kind, n_in, None), schema).write.parquet(tmp)
            except Exception as e:  # noqa: BLE001 - the job's failure carries the task's user error
                raise task_error(e) from None
            return spark.read.parquet(tmp).count()
    bc = spark.sparkContext.broadcast(params)
    errors = spark.sparkContext.accumulator(None, FirstError())  # type: ignore[arg-type]  # an AccumulatorParam by duck typing
    try:
        # --overwrite: the new output is complete before the old one goes
        with hadoopfs.replacing(spark, out, overwrite) as tmp:
            located.mapInArrow(make_batch_fn(bc, kind, n_in, errors), schema).write.parquet(tmp)
            if errors.value is not None:
                raise errors.value.exception()
            rows = spark.read.parquet(tmp).count()
    finally:
        bc.destroy()
    return rows
