"""What the test tiers share: helpers imported by test modules, and the fixtures of several tiers.

A test module imports from here, never from another test module or a conftest.py. Each tier's own
machinery stays in its folder (cluster/standalone.py, compose/compose.py, connect/server.py).

- REPO            the checkout's root
- FOLDER_MARKERS  tests/<folder> -> the marker tests/conftest.py gives every test in it
- fakes           MNIST made in the test: IDX bytes, gzip, a fake source directory, learnable data
- datasets        synthetic Parquet datasets in the project's layout (DATA/train, DATA/test parts)
- tiny_runs       `dist-mnist train` in process on a tiny config (transport "inprocess", no JVM)
- cli             what a command printed and left: its one error line, Spark's stderr, file snapshots
- models          run directories' models read back and compared (bit for bit or within ATOL)
- mnist           where the real MNIST files come from (for the tests marked `mnist`), or why not
- fixtures        the fixtures of several tiers (mnist_dir, mnist_parquet, mlflow_store), a plugin
                  that tests/conftest.py loads
- processes       child processes: a clean environment, free loopback ports, process-group
                  shutdown, drivers read line by line as they run
- chain_harness   a RoundServer and W worker threads without Spark (driver or chain reduction)
- channel_driver  a script: a RoundServer in a process of its own, commanded on stdin
"""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# pyproject.toml describes each marker; a test file writes only its own (slow, mnist, ...)
FOLDER_MARKERS = {
    "spark": "spark",
    "cluster": "cluster",
    "compose": "compose",
    "connect": "connect",
    "tracking": "mlflow",
}
