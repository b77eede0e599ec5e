"""save/load for MLPClassifier and MLPClassificationModel, in MLlib's directory layout.

    PATH/metadata/   one JSON line, exactly as DefaultParamsWriter.saveMetadata writes it
                     (class, uid, sparkVersion, paramMap, defaultParamMap), so Pipeline and
                     PipelineModel persistence find and load the stage by its class name
    PATH/data/       the model only: model.npz (float32 W0, b0, ..., loaded with
                     allow_pickle=False), model.json and summary.json

Files go through dist_mnist.spark.hadoopfs: Hadoop's FileSystem under a classic session (so
hdfs:// and s3a:// paths work like local ones), pyarrow.fs from a Spark Connect client, whose
local paths are made absolute (the metadata is written by the server). Nothing is pickled. A
save is written to a temporary sibling and renamed into place; an existing PATH is refused
unless `.write().overwrite()` (handled here, not by MLlib's JVM-side _handleOverwrite).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from pyspark.ml.util import DefaultParamsReader, DefaultParamsWriter, MLReadable, MLReader, MLWritable, MLWriter

from dist_mnist.spark import hadoopfs

if TYPE_CHECKING:
    from dist_mnist.hints import SparkSession

DATA = "data"


class MLPWriter(MLWriter):
    """Writes an MLPWritable instance: metadata/, plus data/ files when it has any."""

    def __init__(self, instance) -> None:
        super().__init__()
        self.instance = instance

    def save(self, path: str) -> None:
        """Save to `path`; FileExistsError when it exists and overwrite() was not asked."""
        if not isinstance(path, str):
            raise TypeError(f"path should be a string, got type {type(path).__name__}")
        spark = self.sparkSession
        path = hadoopfs.qualified(spark, path)
        hint = "use .write().overwrite().save(path) to replace it"
        with hadoopfs.replacing(spark, path, self.shouldOverwrite, hint) as tmp:
            self.saveImpl(tmp)

    def saveImpl(self, path: str) -> None:
        """Write metadata/ and data/ under `path` (which does not exist yet)."""
        spark = self.sparkSession
        DefaultParamsWriter.saveMetadata(self.instance, path, spark)
        for name, data in self.instance._data_files().items():
            hadoopfs.write_bytes(spark, f"{path.rstrip('/')}/{DATA}/{name}", data)


class MLPReader(MLReader):
    """Reads what MLPWriter wrote into a new instance of `cls`."""

    def __init__(self, cls) -> None:
        super().__init__()
        self.cls = cls

    def load(self, path: str):
        """The instance saved at `path`; errors name the path."""
        spark = self.sparkSession
        path = hadoopfs.qualified(spark, path)
        if not hadoopfs.exists(spark, f"{path.rstrip('/')}/metadata"):
            raise FileNotFoundError(f"{path}: no saved {self.cls.__name__} here (no metadata/ directory)")
        metadata = read_metadata(spark, path)
        expected = f"{self.cls.__module__}.{self.cls.__name__}"
        if metadata["class"] != expected:
            raise ValueError(f"{path}: holds a {metadata['class']}, not a {expected}")
        instance = self.cls()
        instance._resetUid(metadata["uid"])
        DefaultParamsReader.getAndSetParams(instance, metadata)
        data = f"{path.rstrip('/')}/{DATA}"
        instance._load_data(lambda name: hadoopfs.read_bytes(spark, f"{data}/{name}"), data)
        return instance


def read_metadata(spark: SparkSession, path: str) -> dict:
    """What DefaultParamsReader.loadMetadata returns, read through hadoopfs rather than a Spark
    job, so a damaged file (a checksum that no longer matches, say) is one line naming it."""
    where = f"{path.rstrip('/')}/metadata"
    parts = [name for name in hadoopfs.list_names(spark, where) if name.startswith("part-")]
    if not parts:
        raise FileNotFoundError(f"{where}: no part file")
    text = hadoopfs.read_bytes(spark, f"{where}/{parts[0]}").decode("utf-8", errors="replace")
    try:
        metadata = json.loads(text.splitlines()[0] if text else "")
    except json.JSONDecodeError as e:
        raise ValueError(f"{where}/{parts[0]}: not JSON metadata ({e})") from None
    if not isinstance(metadata, dict) or "class" not in metadata:
        raise ValueError(f"{where}/{parts[0]}: not the metadata of a saved stage (no 'class')")
    return metadata


class MLPWritable(MLWritable):
    """save() / write() through MLPWriter; subclasses with data override _data_files."""

    def write(self) -> MLPWriter:
        """An MLWriter for this instance (`.overwrite()` to replace an existing path)."""
        return MLPWriter(self)

    def _data_files(self) -> dict[str, bytes]:
        return {}


class MLPReadable(MLReadable):
    """load() / read() through MLPReader; subclasses with data override _load_data."""

    @classmethod
    def read(cls) -> MLPReader:
        """An MLReader for this class."""
        return MLPReader(cls)

    def _load_data(self, read, where: str) -> None:
        """Restore data/ files; `read(name)` gives a file's bytes."""
