"""Files: how dist-mnist writes and reads what a user keeps, safely. No Spark here.

atomic.py  atomic writes of files and directories; a refused write is one line (WriteFailed)
model.py   a model's files: model.npz (float32 arrays, no pickle) + model.json, and their checks
npz.py     reading an .npz a user hands us: no pickle, no zip bomb
paths.py   where a command may write: never over its inputs, only where it can; the run lock

The checkpoint and the run directory's life are the driver's (dist_mnist.driver.checkpoint,
dist_mnist.driver.runs): they hold its state and need the rounds' types.
"""
