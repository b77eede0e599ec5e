"""The `dist-mnist` command (the console script runs dist_mnist.cli:run; main is the same without the exit).

commands.py  each command: its checks before Spark starts, its run, its one-line errors
parser.py    the arguments, their help and examples
spark.py     the Spark session a command makes, and stops before it exits
"""

from dist_mnist.cli.commands import main, run

__all__ = ["main", "run"]
