#!/usr/bin/python3
"""Build the `deep` model: a compute-bound MLP for measuring dynamic batching.

Input `features` FP32 [N, 64] -> 3 hidden layers of 512 ReLU units -> 10 logits,
then Softmax (`probabilities` [N, 10]) and ArgMax (`label` INT64 [N]). About
560 000 weights (2.2 MB), so one row costs ~0.56 M multiply-adds while its JSON
payload stays as small as the digits model's: inference, not request handling,
dominates, which is where merging rows into one matrix-matrix product pays.

The weights are random (He-initialised, fixed seed): the model is for
throughput measurements and batching tests, not for predictions.

Dependencies (Debian packages):

    apt-get install -y --no-install-recommends python3-numpy python3-onnx

Usage (from the repository root):

    /usr/bin/python3 models/deep/make_model.py

Writes, next to this script: model.onnx (opset 13, ir_version 8) and
tandem-model.yaml. Deterministic: the same package versions give
byte-identical outputs.
"""

import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT_DIR = os.path.dirname(os.path.abspath(__file__))
SEED = 20261201
INPUTS, HIDDEN, LAYERS, CLASSES = 64, 512, 3, 10
MAX_BATCH_SIZE = 256
# Dynamic batching defaults (the worker's --batch-* flags override them).
BATCH_MAX_ROWS = 32
BATCH_MAX_QUEUE_DELAY_US = 500


def build_onnx():
    rng = np.random.default_rng(SEED)
    widths = [INPUTS] + [HIDDEN] * LAYERS + [CLASSES]
    inits, nodes = [], []
    current = "features"
    for layer in range(len(widths) - 1):
        fan_in, fan_out = widths[layer], widths[layer + 1]
        w = rng.normal(0.0, np.sqrt(2.0 / fan_in), size=(fan_in, fan_out)).astype(np.float32)
        b = rng.normal(0.0, 0.01, size=fan_out).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"W{layer}"), numpy_helper.from_array(b, f"b{layer}")]
        last = layer == len(widths) - 2
        mm, add = f"fc{layer}_mm", "logits" if last else f"fc{layer}"
        nodes.append(helper.make_node("MatMul", [current, f"W{layer}"], [mm], name=f"fc{layer}_matmul"))
        nodes.append(helper.make_node("Add", [mm, f"b{layer}"], [add], name=f"fc{layer}_add"))
        if not last:
            nodes.append(helper.make_node("Relu", [add], [f"h{layer}"], name=f"relu{layer}"))
            current = f"h{layer}"
    nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], name="softmax", axis=1))
    nodes.append(helper.make_node("ArgMax", ["logits"], ["label"], name="argmax", axis=1, keepdims=0))
    graph = helper.make_graph(
        nodes,
        "deep_mlp",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", INPUTS])],
        [
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", CLASSES]),
            helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"]),
        ],
        inits,
    )
    model = helper.make_model(
        graph,
        producer_name="tandem models/deep/make_model.py",
        opset_imports=[helper.make_opsetid("", 13)],
    )
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def write_yaml(path):
    text = f"""name: deep
format: onnx
artifact: model.onnx
inputs:
  - {{name: features, datatype: FP32, shape: [-1, {INPUTS}]}}
outputs:
  - {{name: probabilities, datatype: FP32, shape: [-1, {CLASSES}]}}
  - {{name: label, datatype: INT64, shape: [-1]}}
max_batch_size: {MAX_BATCH_SIZE}
batching: {{max_batch_size: {BATCH_MAX_ROWS}, max_queue_delay_us: {BATCH_MAX_QUEUE_DELAY_US}}}
lineage:
  training_code: models/deep/make_model.py
  seed: {SEED}
  tags: {{architecture: "mlp-64-512x{LAYERS}-10", purpose: "dynamic batching benchmark", weights: "random"}}
"""
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def main():
    model = build_onnx()
    onnx.save(model, os.path.join(OUT_DIR, "model.onnx"))
    write_yaml(os.path.join(OUT_DIR, "tandem-model.yaml"))
    print(f"wrote model.onnx, tandem-model.yaml to {OUT_DIR}")


if __name__ == "__main__":
    main()
