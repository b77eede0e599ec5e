"""Small files for a session: existence, whole-file bytes in and out, rename and recursive delete.

A classic session goes through Hadoop's FileSystem layer in the driver's JVM, so hdfs://,
s3a:// and local paths behave alike; the bytes cross Py4J whole, which suits small files
(models of a few MB), not datasets. A Spark Connect client has no JVM: it goes through
pyarrow.fs from this process (local paths, file://, hdfs:// with libhdfs, s3://), so the path
must name storage that this client and the server's cluster both see (an absolute local path
on one host, a shared mount, HDFS, an object store).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pyarrow.fs as pafs

from dist_mnist.files.paths import local_path, run_lock
from dist_mnist.hints import Log

if TYPE_CHECKING:
    from dist_mnist.hints import SparkSession


def _connect(spark: SparkSession) -> bool:
    from dist_mnist.spark.session import is_connect

    return is_connect(spark)


def qualified(spark: SparkSession, path: str) -> str:
    """`path` as a Connect client passes it on: a local path made absolute (the server would
    resolve a relative one against its own working directory); other paths, and any path of a
    classic session, as they are."""
    if not _connect(spark) or "://" in path or path.startswith("file:"):
        return path
    return os.path.abspath(path)


def arrow_filesystem(path: str) -> tuple[Any, str]:
    """(pyarrow FileSystem, the path within it) for a local path or a URI."""
    if "://" not in path and not path.startswith("file:"):
        return pafs.LocalFileSystem(), os.path.abspath(path)
    if path.startswith("file:") and not path.startswith("file://"):
        path = "file://" + path[len("file:") :]  # Hadoop's file:/x
    return pafs.FileSystem.from_uri(path)


def _info(path: str):
    fs, p = arrow_filesystem(path)
    return fs, p, fs.get_file_info(p)


def default_fs(spark: SparkSession) -> str | None:
    """Hadoop's fs.defaultFS: the driver JVM's Hadoop configuration (classic), or what the
    server's configuration says of spark.hadoop.fs.defaultFS (Connect; None when unset)."""
    if _connect(spark):
        return spark.conf.get("spark.hadoop.fs.defaultFS", None)
    return spark.sparkContext._jsc.hadoopConfiguration().get("fs.defaultFS")


def _jvm(spark: SparkSession) -> Any:
    """A classic session's view of its JVM (Py4J)."""
    return spark.sparkContext._jvm


def filesystem(spark: SparkSession, path: str):
    """(Hadoop FileSystem, Hadoop Path) for `path` under the session's Hadoop configuration (classic)."""
    jpath = _jvm(spark).org.apache.hadoop.fs.Path(path)
    return jpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), jpath


def exists(spark: SparkSession, path: str) -> bool:
    """Whether a file or directory exists at `path`."""
    if _connect(spark):
        return _info(path)[2].type != pafs.FileType.NotFound
    fs, jpath = filesystem(spark, path)
    return bool(fs.exists(jpath))


def write_bytes(spark: SparkSession, path: str, data: bytes) -> None:
    """Create the file `path` (refusing an existing one) holding `data`."""
    if _connect(spark):
        fs, p, info = _info(path)
        if info.type != pafs.FileType.NotFound:
            raise FileExistsError(f"{path}: already exists")
        fs.create_dir(p.rsplit("/", 1)[0], recursive=True)
        with fs.open_output_stream(p) as out:
            out.write(data)
        return
    fs, jpath = filesystem(spark, path)
    stream = fs.create(jpath, False)
    try:
        stream.write(bytearray(data))
    finally:
        stream.close()


def read_bytes(spark: SparkSession, path: str) -> bytes:
    """The whole content of the file `path`; FileNotFoundError names it when it is missing,
    ValueError when its Hadoop checksum (.crc) does not match (classic)."""
    if _connect(spark):
        fs, p, info = _info(path)
        if info.type != pafs.FileType.File:
            raise FileNotFoundError(f"{path}: no such file")
        with fs.open_input_stream(p) as stream:
            return bytes(stream.read())
    fs, jpath = filesystem(spark, path)
    if not fs.isFile(jpath):
        raise FileNotFoundError(f"{path}: no such file")
    stream = fs.open(jpath)
    try:
        return bytes(_jvm(spark).org.apache.commons.io.IOUtils.toByteArray(stream))
    except Exception as e:  # py4j's Py4JJavaError: only a checksum error is the user's
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


def list_names(spark: SparkSession, path: str) -> list[str]:
    """The names of the entries of the directory `path`, sorted."""
    if _connect(spark):
        fs, p = arrow_filesystem(path)
        return sorted(entry.base_name for entry in fs.get_file_info(pafs.FileSelector(p)))
    fs, jpath = filesystem(spark, path)
    return sorted(str(status.getPath().getName()) for status in fs.listStatus(jpath))


def delete(spark: SparkSession, path: str) -> None:
    """Remove `path` and everything under it, if it exists."""
    if _connect(spark):
        fs, p, info = _info(path)
        if info.type == pafs.FileType.Directory:
            fs.delete_dir(p)
        elif info.type != pafs.FileType.NotFound:
            fs.delete_file(p)
        return
    fs, jpath = filesystem(spark, path)
    if fs.exists(jpath):
        fs.delete(jpath, True)


def rename(spark: SparkSession, src: str, dst: str) -> None:
    """Move `src` to `dst` (which must not exist); RuntimeError when the filesystem refuses."""
    if _connect(spark):
        fs, p_src = arrow_filesystem(src)
        p_dst = arrow_filesystem(dst)[1]
        if fs.get_file_info(p_dst).type != pafs.FileType.NotFound:
            raise RuntimeError(f"{dst}: could not rename {src} to it (it exists)")
        try:
            fs.move(p_src, p_dst)
        except OSError as e:
            raise RuntimeError(f"{dst}: could not rename {src} to it ({e})") from None
        return
    fs, jsrc = filesystem(spark, src)
    if not fs.rename(jsrc, filesystem(spark, dst)[1]):
        raise RuntimeError(f"{dst}: could not rename {src} to it")


@contextmanager
def replacing(
    spark: SparkSession,
    path: str,
    overwrite: bool = False,
    hint: str = "pass --overwrite to replace it",
    log: Log = print,
) -> Iterator[str]:
    """Yield a temporary sibling of `path` to write into; on success it becomes `path`.

    An existing `path` is refused (FileExistsError with `hint`) unless `overwrite`, and then stays
    whole until the new one is complete: it is moved aside in one rename, the new one renamed in,
    and only then the old one deleted. What a writer killed in between left is recovered first
    (the old copy put back where `path` is missing, and said so). On a local path the writer
    holds `path`'s lock throughout; a store without atomic renames or locks gets no such promise
    (docs/commands.md). A failure removes the temporary directory.
    """
    local = _local(path)
    if local and os.path.islink(local) and os.path.isdir(local):  # a link stays; what it points to is replaced
        path = ("file:" if path.startswith("file:") else "") + os.path.realpath(local)
        local = _local(path)
    with run_lock(local, "writer") if local else contextlib.nullcontext():
        _recover(spark, path, log, temporary=bool(local))
        if exists(spark, path) and not overwrite:
            raise FileExistsError(f"{path}: already exists ({hint})")
        tmp = f"{path.rstrip('/')}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            yield tmp
            if exists(spark, path):
                aside = f"{path.rstrip('/')}.old-{uuid.uuid4().hex[:8]}"
                _move(spark, path, aside)
                _move(spark, tmp, path)
                delete(spark, aside)
            else:
                _move(spark, tmp, path)
        except BaseException:
            delete(spark, tmp)
            raise


def _move(spark: SparkSession, src: str, dst: str) -> None:
    """rename, in this process where both are local (one rename(2): what a kill between two of them leaves is clear)."""
    local_src, local_dst = _local(src), _local(dst)
    if local_src and local_dst:
        os.rename(local_src, local_dst)
    else:
        rename(spark, src, dst)


def _local(path: str) -> str | None:
    """The local path of a file: or plain path, else None (a store of its own)."""
    if "://" in path and not path.startswith("file:"):
        return None
    return local_path(path)


def _recover(spark: SparkSession, path: str, log: Log, temporary: bool) -> None:
    """Put back the old copy a killed replacement moved aside where `path` is missing; remove the
    other old copies, and (under `path`'s lock, so no live writer's) the temporary ones."""
    parent, _, name = path.rstrip("/").rpartition("/")
    try:
        names = list_names(spark, parent)
    except Exception:  # noqa: BLE001 - no parent yet (or not listable): nothing to recover
        return
    aside = sorted(n for n in names if n.startswith(f"{name}.old-"))
    stale = [n for n in names if n.startswith(f"{name}.tmp-")] if temporary else []
    if aside and not exists(spark, path):
        _move(spark, f"{parent}/{aside[-1]}", path)
        log(f"{path}: put back its previous copy ({aside[-1]}), which an interrupted replacement had moved aside")
        aside = aside[:-1]
    for leftover in aside + stale:
        delete(spark, f"{parent}/{leftover}")
    if aside or stale:
        log(f"{path}: removed what an interrupted write had left: {', '.join(aside + stale)}")
