"""`dist-mnist export --onnx`: onnxruntime scores the exported graph as our NumPy forward pass does."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from dist_mnist.cli import commands as cli
from dist_mnist.files.model import MODEL_NPZ, load_model, save_model
from dist_mnist.nn.model import init_params, logits_of, to_inputs
from dist_mnist.outputs.export import export_onnx, to_onnx

from ..support.cli import one_line_error

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

RTOL, ATOL = 1e-5, 1e-7  # float32 GEMMs summed in another order; probabilities near 0 get ATOL


def random_params(sizes: list[int], seed: int) -> dict[str, np.ndarray]:
    """Xavier weights times 3 (so the inputs, not the biases, decide the class) and nonzero biases."""
    params = init_params(sizes, seed)
    rng = np.random.default_rng(seed)
    for i in range(len(sizes) - 1):
        params[f"W{i}"] *= np.float32(3.0)
        params[f"b{i}"] = (0.1 * rng.standard_normal(sizes[i + 1])).astype(np.float32)
    return params


def sparse_pixels(n: int, n_in: int, seed: int) -> np.ndarray:
    """uint8 rows, about 70% zeros like MNIST's background (and so through logits_of's column skip)."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, n_in)) * (rng.random((n, n_in)) < 0.3)).astype(np.uint8)


def numpy_scores(params, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(logits, softmax probabilities, argmax) of our forward pass on float32 inputs X, in float64 softmax."""
    logits = logits_of(params, X)
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    return logits, p, np.argmax(logits, axis=1)


def onnx_scores(model, features: np.ndarray) -> dict[str, np.ndarray]:
    """onnxruntime's outputs by name for float32 `features`."""
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {"features": features})))


@pytest.mark.parametrize("sizes", [[20, 16, 8, 3], [20, 3]], ids=["two-hidden", "one-layer"])
def test_image_model_scores_raw_pixels_as_numpy_does(sizes):
    params = random_params(sizes, seed=7)
    pixels = sparse_pixels(300, sizes[0], seed=1)
    out = onnx_scores(to_onnx(params, {"layer_sizes": sizes}), pixels.astype(np.float32))  # 0..255, unscaled
    logits, probs, preds = numpy_scores(params, to_inputs(pixels))
    assert out["probability"].dtype == np.float32 and out["probability"].shape == (300, sizes[-1])
    assert out["prediction"].dtype == np.int64 and out["prediction"].shape == (300,)
    np.testing.assert_allclose(out["rawPrediction"], logits, rtol=RTOL, atol=1e-5)
    np.testing.assert_allclose(out["probability"], probs, rtol=RTOL, atol=ATOL)
    np.testing.assert_array_equal(out["prediction"], preds)
    assert len(np.unique(preds)) == sizes[-1]  # every class occurs: argmax is not checked on one column


def test_features_model_uses_features_as_given():
    sizes = [12, 10, 4]
    params = random_params(sizes, seed=3)
    X = (3.0 * np.random.default_rng(2).standard_normal((200, 12))).astype(np.float32)  # negatives too
    model = to_onnx(params, {"layer_sizes": sizes, "feature_kind": "features"})
    assert {p.key: p.value for p in model.metadata_props}["feature_kind"] == "features"
    as_float = onnx_scores(model, X)
    logits, probs, preds = numpy_scores(params, X)
    np.testing.assert_allclose(as_float["rawPrediction"], logits, rtol=RTOL, atol=1e-5)
    np.testing.assert_allclose(as_float["probability"], probs, rtol=RTOL, atol=ATOL)
    np.testing.assert_array_equal(as_float["prediction"], preds)
    # the same weights as an "image" model divide by 255 first: different logits, 255 times smaller pre-bias
    as_image = onnx_scores(to_onnx(params, {"layer_sizes": sizes, "feature_kind": "image"}), X)
    np.testing.assert_allclose(as_image["rawPrediction"], logits_of(params, X / np.float32(255)), rtol=RTOL, atol=1e-5)
    assert not np.allclose(as_image["rawPrediction"], as_float["rawPrediction"], atol=1e-3)


def test_a_model_json_with_the_older_word_float_exports_as_a_features_model(tmp_path):
    sizes = [12, 10, 4]
    params = random_params(sizes, seed=3)
    (tmp_path / "OLD").mkdir()
    save_model(tmp_path / "OLD", params, {"layer_sizes": sizes, "feature_kind": "float"})  # before "features"
    model = export_onnx(tmp_path / "OLD", tmp_path / "old.onnx")
    assert {p.key: p.value for p in model.metadata_props}["feature_kind"] == "features"
    assert next(n.op_type for n in model.graph.node) == "Gemm"  # no multiply by 1/255 first
    X = np.random.default_rng(4).standard_normal((20, 12)).astype(np.float32)
    np.testing.assert_array_equal(onnx_scores(model, X)["prediction"], numpy_scores(params, X)[2])


def test_graph_is_valid_with_a_symbolic_batch_and_says_what_it_is():
    model = to_onnx(random_params([784, 32, 10], 0), {"layer_sizes": [784, 32, 10]})
    onnx.checker.check_model(model, full_check=True)
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)]
    assert model.ir_version == 8 and model.producer_name == "dist-mnist"
    graph = model.graph
    [features] = graph.input
    assert features.name == "features" and features.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert [d.dim_param or d.dim_value for d in features.type.tensor_type.shape.dim] == ["N", 784]
    outputs = {o.name: o.type.tensor_type for o in graph.output}
    assert outputs["probability"].elem_type == onnx.TensorProto.FLOAT
    assert outputs["prediction"].elem_type == onnx.TensorProto.INT64
    assert [d.dim_param or d.dim_value for d in outputs["probability"].shape.dim] == ["N", 10]
    assert [n.op_type for n in graph.node] == ["Mul", "Gemm", "Relu", "Gemm", "Softmax", "ArgMax"]
    props = {p.key: p.value for p in model.metadata_props}
    assert json.loads(props["layer_sizes"]) == [784, 32, 10] and props["feature_kind"] == "image"
    assert "784-32-10" in model.doc_string and "1/255" in model.doc_string
    # any batch size: 1 row, and 5 rows
    for n in (1, 5):
        out = onnx_scores(model, np.zeros((n, 784), np.float32))
        assert out["prediction"].shape == (n,)


def test_bad_metadata_is_refused_naming_the_key():
    params = random_params([4, 3], 0)
    with pytest.raises(ValueError, match=r"'feature_kind' must be one of \['image', 'features'\] .*, got 'pixels'"):
        to_onnx(params, {"layer_sizes": [4, 3], "feature_kind": "pixels"})
    with pytest.raises(ValueError, match=r"array W0 has shape \(4, 3\), expected \(5, 3\)"):
        to_onnx(params, {"layer_sizes": [5, 3]})


@pytest.fixture
def run_dir(tmp_path):
    """A run directory with a 784-16-10 model, as train writes it."""
    run = tmp_path / "RUN"
    run.mkdir()
    save_model(run, random_params([784, 16, 10], 5), {"layer_sizes": [784, 16, 10], "config": {"epochs": 1}})
    return run


def test_cli_exports_a_file_onnxruntime_loads(run_dir, capsys):
    out = run_dir / "model.onnx"
    assert cli.main(["export", str(run_dir), "--onnx", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert [p.name for p in run_dir.iterdir() if p.name.startswith(".")] == []  # no temporary file left
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.get_modelmeta().custom_metadata_map["feature_kind"] == "image"
    pixels = sparse_pixels(50, 784, seed=0)
    prediction = session.run(["prediction"], {"features": pixels.astype(np.float32)})[0]
    params, _ = load_model(run_dir)
    np.testing.assert_array_equal(prediction, numpy_scores(params, to_inputs(pixels))[2])


def test_existing_file_is_refused_unless_overwrite(run_dir, capsys):
    out = run_dir / "model.onnx"
    out.write_bytes(b"keep me")
    assert cli.main(["export", str(run_dir), "--onnx", str(out)]) == 2
    assert "model.onnx: already exists (pass --overwrite to replace it)" in one_line_error(capsys, "export")
    assert out.read_bytes() == b"keep me"
    assert cli.main(["export", str(run_dir), "--onnx", str(out), "--overwrite"]) == 0
    assert onnx.load(str(out)).graph.input[0].name == "features"


def test_output_into_a_new_directory(run_dir, tmp_path):
    out = tmp_path / "exported" / "deep" / "mlp.onnx"
    export_onnx(run_dir, out)
    assert out.is_file()


@pytest.mark.parametrize(
    "case, message",
    [
        ("no run", "NOPE: no such run directory"),
        ("no model.json", "model.json: no such file"),
        ("no model.npz", "model.npz: no such file"),
        ("bad feature_kind", "model.json: 'feature_kind' must be one of"),
        ("out is a directory", "is a directory, expected a file name"),
    ],
)
def test_bad_input_is_one_line_exit_2(case, message, run_dir, capsys):
    out = run_dir.parent / "out.onnx"
    if case == "no run":
        run_dir = run_dir.parent / "NOPE"
    elif case == "no model.json":
        (run_dir / "model.json").unlink()
    elif case == "no model.npz":
        (run_dir / MODEL_NPZ).unlink()
    elif case == "bad feature_kind":
        meta = json.loads((run_dir / "model.json").read_text())
        (run_dir / "model.json").write_text(json.dumps({**meta, "feature_kind": "rgb"}))
    elif case == "out is a directory":
        out.mkdir()
    assert cli.main(["export", str(run_dir), "--onnx", str(out)]) == 2
    assert message in one_line_error(capsys, "export")
    assert not out.is_file()


def test_missing_onnx_says_how_to_install_it(run_dir, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` now raises ImportError
    out = run_dir / "model.onnx"
    assert cli.main(["export", str(run_dir), "--onnx", str(out)]) == 1  # a broken environment, like no matplotlib
    line = one_line_error(capsys, "export")
    assert "needs the onnx package: pip install 'dist-mnist[onnx]'" in line
    assert not out.exists()


def fitted_mnist_model(images: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """A 784-1000-10 model in a second, no training loop: W0 from init_params(seed 123) as a fixed
    random ReLU layer, then W1, b1 by ridge least squares of the one-hot labels on its outputs."""
    params = init_params([784, 1000, 10], seed=123)
    H = np.maximum(to_inputs(images) @ params["W0"], 0).astype(np.float64)  # (n, 1000)
    H = np.hstack([H, np.ones((len(H), 1))])  # the bias column
    Y = np.eye(10)[labels]  # (n, 10)
    W = np.linalg.solve(H.T @ H + 1e-2 * np.eye(H.shape[1]), H.T @ Y)  # (1001, 10)
    params["W1"], params["b1"] = W[:-1].astype(np.float32), W[-1].astype(np.float32)
    return params


@pytest.mark.mnist
def test_real_mnist_test_set_scores_the_same(mnist_dir):
    from dist_mnist.data.mnist import load_split

    train_images, train_labels, _ = load_split(mnist_dir, "train")
    params = fitted_mnist_model(train_images[:10_000], train_labels[:10_000])
    images, labels, _ = load_split(mnist_dir, "test")  # (10000, 784) uint8
    out = onnx_scores(to_onnx(params, {"layer_sizes": [784, 1000, 10]}), images.astype(np.float32))
    _, probs, preds = numpy_scores(params, to_inputs(images))
    differ = int((out["prediction"] != preds).sum())
    assert differ == 0, f"{differ} of {len(images)} test images predicted differently by onnxruntime"
    np.testing.assert_allclose(out["probability"], probs, rtol=RTOL, atol=1e-6)
    # a real classifier, not one class everywhere: the check above covers every digit
    assert np.bincount(preds, minlength=10).min() > 500
    assert (preds == labels).mean() > 0.9  # 0.9337 measured
