"""A user error raised on a worker (bad data), carried back to the driver as a value.

A data error fails on every retry, so a task returns it instead of failing: Spark prints no
stack trace and retries nothing, and the driver raises the same exception with the same
one-line message (which names the file and row). Anything else is a fault and still fails
the task, so Spark's retries stay for faults.
"""

from __future__ import annotations

from dataclasses import dataclass

USER_ERRORS: dict[str, type[Exception]] = {"ValueError": ValueError, "FileNotFoundError": FileNotFoundError}
USER_ERROR_TYPES = tuple(USER_ERRORS.values())  # for `except`


@dataclass(frozen=True)
class WorkerError:
    """A user error from a worker: its kind (a key of USER_ERRORS) and its one-line message."""

    kind: str
    message: str

    @classmethod
    def of(cls, e: Exception) -> WorkerError:
        """The record of e, by the user error it is (pyarrow's ArrowInvalid is a ValueError)."""
        kind = next((name for name, t in USER_ERRORS.items() if isinstance(e, t)), type(e).__name__)
        return cls(kind, str(e))

    def exception(self) -> Exception:
        """The exception to raise on the driver: the same type, or RuntimeError for a fault."""
        return USER_ERRORS.get(self.kind, RuntimeError)(self.message)


class FirstError:
    """A Spark AccumulatorParam (duck-typed: no pyspark here) keeping the first WorkerError
    added, for jobs whose tasks cannot return values (a DataFrame write)."""

    def zero(self, value: WorkerError | None) -> WorkerError | None:
        return None

    def addInPlace(self, first: WorkerError | None, other: WorkerError | None) -> WorkerError | None:
        return first if first is not None else other


def raise_worker_error(results: list) -> None:
    """Raise the first worker's error among the values a job collected, if there is one."""
    for r in results:
        if isinstance(r, WorkerError):
            raise r.exception()
