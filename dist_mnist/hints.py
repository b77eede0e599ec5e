"""Type names that several floors share: Log, a sink for one-line messages, and SparkSession.

SparkSession is pyspark's classic class for the type checker only (nothing here imports pyspark
at run time): a Spark Connect session has the same calls this project makes, and pyspark's own
code annotates both kinds with the classic class the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias

Log: TypeAlias = Callable[[str], None]  # print, a progress bar's line, a logger's info

if TYPE_CHECKING:
    from pyspark import SparkContext as SparkContext
    from pyspark.sql import SparkSession as SparkSession
