"""A user error raised on a worker travels back as a value and is raised on the driver as itself;
anything else is a fault (RuntimeError)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from dist_mnist.worker_errors import FirstError, WorkerError, raise_worker_error


def test_a_user_error_keeps_its_type_and_message():
    for e in (ValueError("DATA/part-0.parquet: image at row 3 has 783 bytes"), FileNotFoundError("DATA: no such")):
        record = WorkerError.of(e)
        again = record.exception()
        assert type(again) is type(e) and str(again) == str(e)


def test_a_subclass_of_a_user_error_travels_as_the_user_error():
    record = WorkerError.of(pa.ArrowInvalid("bad footer"))  # pyarrow's ArrowInvalid is a ValueError
    assert record.kind == "ValueError" and type(record.exception()) is ValueError


def test_anything_else_is_a_fault():
    record = WorkerError.of(MemoryError("out of memory"))
    assert record.kind == "MemoryError"
    assert type(record.exception()) is RuntimeError and str(record.exception()) == "out of memory"


def test_the_first_workers_error_is_raised_among_results():
    raise_worker_error([1, 2, 3])  # no error: nothing raised
    with pytest.raises(FileNotFoundError, match="first"):
        raise_worker_error([1, WorkerError("FileNotFoundError", "first"), WorkerError("ValueError", "second")])


def test_an_accumulator_keeps_the_first_error():
    acc = FirstError()
    first, second = WorkerError("ValueError", "a"), WorkerError("ValueError", "b")
    kept = acc.zero(None)
    for e in (None, first, second, None):
        kept = acc.addInPlace(kept, e)
    assert kept is first
