"""`dist-mnist export RUN --onnx OUT.onnx`: a trained model as a portable ONNX graph.

The graph computes what `nn.model.logits_of` does, so any ONNX runtime can score without this
package, Spark or Python. Input `features` float32 (N, n_in) of raw values: 0..255 pixels for
an "image" model (the graph starts with the multiply by 1/255 that `to_inputs` does), or
features used as given for a "features" model (model.json's feature_kind, FeatureKind).
Outputs `rawPrediction` float32 (N, C) (the logits), `probability` float32 (N, C) (their
softmax) and `prediction` int64 (N,) (the argmax of the logits, as `nn.model.predict` takes it).
Built with onnx.helper only (the `onnx` extra; no torch). No Spark here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dist_mnist import __version__
from dist_mnist.data.features import FeatureKind
from dist_mnist.files.atomic import atomic_write_bytes
from dist_mnist.files.model import MODEL_JSON, check_layer_sizes, check_params, load_model, model_files
from dist_mnist.files.paths import refuse_overlap
from dist_mnist.nn.model import Params
from dist_mnist.scoring import FIELDS

if TYPE_CHECKING:
    import onnx

# Opset 17 (ONNX 1.12, IR version 8) has every op used here in its current form (Softmax over
# one axis since opset 13) and loads in every onnxruntime since 1.13; pinning both keeps the
# file the same whichever onnx wrote it, and readable by older runtimes.
OPSET, IR_VERSION = 17, 8
INPUT = "features"  # the graph's input: MLlib's default featuresCol, whatever the FeatureKind
PREDICTION, PROBABILITY, LOGITS = FIELDS  # the outputs, named as every scorer names them
SCALING = {
    FeatureKind.IMAGE: "pixel values 0..255, scaled by 1/255 in the graph",
    FeatureKind.FEATURES: "float features, used as given",
}
BATCH = "N"  # the symbolic batch dimension


def _onnx():
    """The onnx package, or a one-line RuntimeError saying how to install it."""
    try:
        import onnx
    except ImportError:
        raise RuntimeError(
            "dist-mnist export needs the onnx package: pip install 'dist-mnist[onnx]' (or pip install 'onnx>=1.15')"
        ) from None
    return onnx


def _layers(params: Params, kind: FeatureKind, n_layers: int) -> tuple[list, list]:
    """The graph's nodes (scale for IMAGE, then Gemm + Relu per layer, Softmax, ArgMax) and its
    initializers (the parameters, and IMAGE's 1/255)."""
    from onnx import helper, numpy_helper

    initializers = [numpy_helper.from_array(np.ascontiguousarray(params[k]), name=k) for k in params]
    nodes = []
    h = INPUT
    if kind is FeatureKind.IMAGE:  # the same float32 multiply as nn.model.to_inputs, so the same rounding
        initializers.append(numpy_helper.from_array(np.array(1.0 / 255.0, dtype=np.float32), name="scale"))
        nodes.append(helper.make_node("Mul", [INPUT, "scale"], ["x"], name="scale_pixels"))
        h = "x"
    for i in range(n_layers):
        z = LOGITS if i == n_layers - 1 else f"z{i}"
        nodes.append(helper.make_node("Gemm", [h, f"W{i}", f"b{i}"], [z], name=f"dense{i}"))  # h @ W + b
        if i < n_layers - 1:
            h = f"h{i}"
            nodes.append(helper.make_node("Relu", [z], [h], name=f"relu{i}"))
    nodes.append(helper.make_node("Softmax", [LOGITS], [PROBABILITY], name="softmax", axis=1))
    nodes.append(helper.make_node("ArgMax", [LOGITS], [PREDICTION], name="argmax", axis=1, keepdims=0))
    return nodes, initializers


def to_onnx(params: Params, meta: dict) -> onnx.ModelProto:
    """The ONNX model (onnx.ModelProto) of an MLP with model.json metadata `meta`.

    Args:
        params: {"W0": (n_in, n_out), "b0": (n_out,), ...} float32, as model.npz holds them.
        meta: model.json's object; "layer_sizes" must match params, "feature_kind" is optional.
    Raises:
        ValueError: params and layer sizes disagree, or an unknown feature kind.
        RuntimeError: the onnx package is not installed.
    """
    sizes = check_layer_sizes(meta, MODEL_JSON)
    params = check_params(params, sizes, "parameters")
    kind = FeatureKind.of_model(meta, MODEL_JSON)
    checker = _onnx().checker
    from onnx import TensorProto, helper

    nodes, initializers = _layers(params, kind, len(sizes) - 1)
    n_in, n_out = sizes[0], sizes[-1]
    doc = (
        f"dist-mnist MLP {'-'.join(map(str, sizes))} (ReLU hidden layers, softmax output). "
        f"Input '{INPUT}' float32 [N, {n_in}]: {SCALING[kind]}. Outputs '{PROBABILITY}' float32 [N, {n_out}], "
        f"'{PREDICTION}' int64 [N] (argmax), '{LOGITS}' float32 [N, {n_out}] (logits)."
    )
    graph = helper.make_graph(
        nodes,
        "dist_mnist_mlp",
        inputs=[helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, [BATCH, n_in])],
        outputs=[
            helper.make_tensor_value_info(PROBABILITY, TensorProto.FLOAT, [BATCH, n_out]),
            helper.make_tensor_value_info(PREDICTION, TensorProto.INT64, [BATCH]),
            helper.make_tensor_value_info(LOGITS, TensorProto.FLOAT, [BATCH, n_out]),
        ],
        initializer=initializers,
        doc_string=doc,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="dist-mnist",
        producer_version=__version__,
        doc_string=doc,
    )
    helper.set_model_props(model, {"layer_sizes": json.dumps(sizes), "feature_kind": kind.value})
    checker.check_model(model, full_check=True)
    return model


def export_onnx(run_dir: str | os.PathLike, out: str | os.PathLike, overwrite: bool = False) -> onnx.ModelProto:
    """Write RUN's model as ONNX to `out`, atomically; returns the onnx.ModelProto.

    Raises:
        FileExistsError: `out` exists and not `overwrite`.
        ValueError: `out` is one of RUN's model files (or a directory holding them).
        FileNotFoundError: RUN, its model.npz or model.json is missing.
        ValueError: the model files are invalid.
        RuntimeError: the onnx package is not installed.
    """
    run_dir, out = Path(run_dir), Path(out)
    refuse_overlap(out, "--onnx", model_files(run_dir, "RUN"))
    if out.is_dir():
        raise ValueError(f"{out}: is a directory, expected a file name such as {out / 'model.onnx'}")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out}: already exists (pass --overwrite to replace it)")
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: no such run directory")
    params, meta = load_model(run_dir)
    FeatureKind.of_model(meta, str(run_dir / MODEL_JSON))  # a bad value is reported with the file's path
    model = to_onnx(params, meta)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, model.SerializeToString())
    return model
