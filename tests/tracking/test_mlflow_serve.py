"""`mlflow models serve` on the pyfunc model `train --mlflow` logs: a JSON request (the `image`
column base64, as MLflow encodes binary) is answered with the predictions dist-mnist computes."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from dist_mnist.files.model import load_model
from dist_mnist.nn.model import predict

from ..support.tiny_runs import tiny_data, train_cli

mlflow = pytest.importorskip("mlflow")
pytest.importorskip("uvicorn", reason="the scoring server is the full mlflow package's (the ui extra)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_scoring_server_answers_a_json_request_as_dist_mnist_predicts(mlflow_store, tmp_path):
    data, run = tiny_data(tmp_path / "DATA"), tmp_path / "RUN"
    assert train_cli(data, run, "--mlflow") == 0
    run_id = mlflow.search_runs(experiment_names=["dist-mnist"], output_format="list")[0].info.run_id
    images = np.random.default_rng(0).integers(0, 256, (5, 784), dtype=np.uint8)
    rows = [[base64.b64encode(r.tobytes()).decode()] for r in images]  # binary in MLflow's JSON: base64
    request = {"dataframe_split": {"columns": ["image"], "data": rows}}
    port, venv = _free_port(), Path(sys.executable).parent  # the scoring server runs uvicorn from this venv
    serve = [str(venv / "mlflow"), "models", "serve", "-m", f"runs:/{run_id}/model", "--env-manager", "local"]
    server = subprocess.Popen(
        [*serve, "--host", "127.0.0.1", "--port", str(port)],
        env={**os.environ, "MLFLOW_TRACKING_URI": mlflow_store, "PATH": f"{venv}:{os.environ.get('PATH', '')}"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()[-3000:]
                assert time.monotonic() < deadline, "the scoring server did not answer /ping"
                time.sleep(0.5)
        post = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=json.dumps(request).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(post, timeout=60) as r:
            answer = json.load(r)
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
    params, _ = load_model(run)
    want = predict(params, images)
    got = [row["prediction"] for row in answer["predictions"]]
    assert got == [float(c) for c in want]
    assert all(len(row["probability"]) == 10 for row in answer["predictions"])
