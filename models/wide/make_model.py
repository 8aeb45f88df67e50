#!/usr/bin/python3
"""Build the `wide` model: a weightless ONNX graph with a large input.

It exists to exercise the request path with a large payload (one row is a
3x224x224 FP32 image, 150 528 values, about 1 MB of JSON) while keeping the
inference itself trivially cheap, so that a benchmark measures moving and
validating the payload rather than the model.

Graph: `ReduceMean(axes=[2, 3], keepdims=0)` over `image` [N, 3, 224, 224]
gives `mean` [N, 3], the per-channel mean of each image. No weights.

Dependencies (Debian packages):

    apt-get install -y --no-install-recommends python3-numpy python3-onnx

Usage (from the repository root):

    /usr/bin/python3 models/wide/make_model.py

Writes, next to this script:
    model.onnx          opset 13, ir_version 8
    tandem-model.yaml   model contract

Deterministic: the same package versions give byte-identical outputs.
"""

import os

import onnx
from onnx import TensorProto, helper

OUT_DIR = os.path.dirname(os.path.abspath(__file__))
CHANNELS, HEIGHT, WIDTH = 3, 224, 224
MAX_BATCH_SIZE = 8


def build_onnx():
    node = helper.make_node("ReduceMean", ["image"], ["mean"], name="channel_mean",
                            axes=[2, 3], keepdims=0)
    graph = helper.make_graph(
        [node],
        "wide",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT,
                                       ["batch", CHANNELS, HEIGHT, WIDTH])],
        [helper.make_tensor_value_info("mean", TensorProto.FLOAT, ["batch", CHANNELS])],
    )
    model = helper.make_model(
        graph,
        producer_name="tandem models/wide/make_model.py",
        opset_imports=[helper.make_opsetid("", 13)],
    )
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def self_check(model):
    """Structural check; the numeric check runs against the real worker (see README.md)."""
    (node,) = model.graph.node
    assert node.op_type == "ReduceMean"
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    assert list(attrs["axes"]) == [2, 3] and attrs["keepdims"] == 0


def write_yaml(path):
    text = f"""name: wide
format: onnx
artifact: model.onnx
inputs:
  - {{name: image, datatype: FP32, shape: [-1, {CHANNELS}, {HEIGHT}, {WIDTH}]}}
outputs:
  - {{name: mean, datatype: FP32, shape: [-1, {CHANNELS}]}}
max_batch_size: {MAX_BATCH_SIZE}
lineage:
  training_code: models/wide/make_model.py
  tags: {{architecture: "reduce-mean-3x224x224", purpose: "large-payload benchmark", weights: "none"}}
"""
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def main():
    model = build_onnx()
    self_check(model)
    onnx.save(model, os.path.join(OUT_DIR, "model.onnx"))
    write_yaml(os.path.join(OUT_DIR, "tandem-model.yaml"))
    print(f"wrote model.onnx, tandem-model.yaml to {OUT_DIR}")


if __name__ == "__main__":
    main()
