"""Files through Hadoop's FileSystem layer in the driver's JVM, so hdfs://, s3a:// and local
paths behave alike: existence, whole-file bytes in and out, rename and recursive delete.

The bytes cross Py4J whole, which suits small files (models of a few MB), not datasets.
"""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from typing import Iterator


def filesystem(spark, path: str):
    """(Hadoop FileSystem, Hadoop Path) for `path` under the session's Hadoop configuration."""
    sc = spark.sparkContext
    jpath = sc._jvm.org.apache.hadoop.fs.Path(path)
    return jpath.getFileSystem(sc._jsc.hadoopConfiguration()), jpath


def exists(spark, path: str) -> bool:
    """Whether a file or directory exists at `path`."""
    fs, jpath = filesystem(spark, path)
    return bool(fs.exists(jpath))


def write_bytes(spark, path: str, data: bytes) -> None:
    """Create the file `path` (refusing an existing one) holding `data`."""
    fs, jpath = filesystem(spark, path)
    stream = fs.create(jpath, False)
    try:
        stream.write(bytearray(data))
    finally:
        stream.close()


def read_bytes(spark, path: str) -> bytes:
    """The whole content of the file `path`; FileNotFoundError names it when it is missing,
    ValueError when its Hadoop checksum (.crc) does not match."""
    fs, jpath = filesystem(spark, path)
    if not fs.isFile(jpath):
        raise FileNotFoundError(f"{path}: no such file")
    stream = fs.open(jpath)
    try:
        return bytes(spark.sparkContext._jvm.org.apache.commons.io.IOUtils.toByteArray(stream))
    except Exception as e:  # noqa: BLE001 - py4j's Py4JJavaError: only a checksum error is the user's
        if java_class(e) == "org.apache.hadoop.fs.ChecksumException":
            raise ValueError(
                f"{path}: checksum mismatch (the file was changed after it was saved; "
                f"Hadoop's .{jpath.getName()}.crc beside it no longer matches)"
            ) from None
        raise
    finally:
        stream.close()


def java_class(e: BaseException) -> str | None:
    """The class name of the Java exception behind a Py4JJavaError, else None."""
    java = getattr(e, "java_exception", None)
    return str(java.getClass().getName()) if java is not None else None


def list_names(spark, path: str) -> list[str]:
    """The names of the entries of the directory `path`, sorted."""
    fs, jpath = filesystem(spark, path)
    return sorted(str(status.getPath().getName()) for status in fs.listStatus(jpath))


def delete(spark, path: str) -> None:
    """Remove `path` and everything under it, if it exists."""
    fs, jpath = filesystem(spark, path)
    if fs.exists(jpath):
        fs.delete(jpath, True)


def rename(spark, src: str, dst: str) -> None:
    """Move `src` to `dst` (which must not exist); RuntimeError when the filesystem refuses."""
    fs, jsrc = filesystem(spark, src)
    if not fs.rename(jsrc, filesystem(spark, dst)[1]):
        raise RuntimeError(f"{dst}: could not rename {src} to it")


@contextmanager
def replacing(spark, path: str, overwrite: bool = False, hint: str = "pass --overwrite to replace it") -> Iterator[str]:
    """Yield a temporary sibling of `path` to write into; on success it becomes `path`.

    An existing `path` is refused (FileExistsError with `hint`) unless `overwrite`, and then
    stays whole until the new one is complete. A failure removes the temporary directory.
    """
    if exists(spark, path) and not overwrite:
        raise FileExistsError(f"{path}: already exists ({hint})")
    tmp = f"{path.rstrip('/')}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        yield tmp
        delete(spark, path)
        rename(spark, tmp, path)
    except BaseException:
        delete(spark, tmp)
        raise
