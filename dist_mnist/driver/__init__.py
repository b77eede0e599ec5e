"""The driver's side of training, free of Spark: prepare a run, run its rounds, finish it.

prepare.py   run directory (locked), splits, config, state: before any JVM
loop.py      the round loop
finish.py    the final evaluation's scores, the run's files, TrainResult
train.py     train(): the three, with a transport between them
progress.py  what the user sees while it trains, and Ctrl-C
checkpoint.py  what a checkpoint holds (TrainState) and its file
runs.py      a run directory's life: staged in RUN.partial, swapped into place when finished
timings.py   each round's time by part, and the run's phases
tracker.py   what the driver tells an experiment tracker (dist_mnist.tracking implements it)
"""

from dist_mnist.driver.finish import TrainResult
from dist_mnist.driver.loop import Diverged
from dist_mnist.driver.prepare import Prepared, prepare
from dist_mnist.driver.train import train, train_prepared

__all__ = ["Diverged", "Prepared", "TrainResult", "prepare", "train", "train_prepared"]
