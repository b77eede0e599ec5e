"""Driver-side view of an ingested split: its Parquet files and row counts, never its rows."""

from __future__ import annotations

from dataclasses import dataclass

from dist_mnist.data.parquet import count_rows


@dataclass(frozen=True)
class SplitFiles:
    """The part files of one split, in global row order, with their row counts."""

    path: str
    files: tuple[str, ...]
    rows: tuple[int, ...]

    @property
    def n_rows(self) -> int:
        return sum(self.rows)


def describe_split(spark, path: str) -> SplitFiles:
    """List and check a Parquet split through Spark; read only the footers for row counts."""
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import AnalysisException
    from pyspark.sql.types import BinaryType, IntegralType

    try:
        df = spark.read.parquet(path)
        schema = df.schema
    except (AnalysisException, Py4JJavaError) as e:
        # a file that is not Parquet fails schema inference with a SparkException, not an
        # AnalysisException; its Java message names the file
        text = e.java_exception.getMessage() if isinstance(e, Py4JJavaError) else str(e)
        msg = (text or type(e).__name__).splitlines()[0]
        raise ValueError(f"{path}: cannot be read as a Parquet dataset ({msg})") from None
    fields = {f.name: f.dataType for f in schema.fields}
    missing = [c for c in ("label", "image") if c not in fields]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; found {sorted(fields)}")
    if not isinstance(fields["label"], IntegralType):
        raise ValueError(f"{path}: column 'label' has type {fields['label'].simpleString()}, expected an integer type")
    if not isinstance(fields["image"], BinaryType):
        raise ValueError(f"{path}: column 'image' has type {fields['image'].simpleString()}, expected binary")
    files = tuple(sorted(df.inputFiles()))
    rows = tuple(count_rows(f) for f in files)
    if not files or sum(rows) == 0:
        raise ValueError(f"{path}: the dataset is empty")
    return SplitFiles(path, files, rows)
