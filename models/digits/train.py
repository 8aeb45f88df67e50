#!/usr/bin/python3
"""Train the `digits` example model and export it as ONNX.

A one-hidden-layer MLP (64 -> 64 ReLU -> 10 softmax) for the 8x8 handwritten
digits data set, trained in plain numpy with Adam. Deterministic: the same
input file and seed give byte-identical outputs.

Obtaining the data (digits.csv.gz, 1797 rows: 64 pixel columns with values
0..16, then the label) without installing scikit-learn, on Debian 12:

    cd "$(mktemp -d)"
    apt-get download python3-sklearn
    dpkg -x python3-sklearn_*.deb x
    ls x/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz

Dependencies (Debian packages; do not install python3-sklearn itself):

    apt-get install -y --no-install-recommends python3-numpy python3-onnx

Usage (from the repository root):

    /usr/bin/python3 models/digits/train.py /path/to/digits.csv.gz

Writes, next to this script:
    model.onnx          opset 13, ir_version 8
    tandem-model.yaml   model contract and lineage
    heldout.csv         held-out rows: 64 integer pixels then the label
"""

import gzip
import hashlib
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SEED = 20261128
HELDOUT_FRACTION = 0.2
HIDDEN = 64
CLASSES = 10
EPOCHS = 400
BATCH = 64
LEARNING_RATE = 1e-3
WEIGHT_DECAY = 1e-4
MAX_BATCH_SIZE = 1024

OUT_DIR = os.path.dirname(os.path.abspath(__file__))


def load(path):
    with gzip.open(path, "rt") as f:
        data = np.loadtxt(f, delimiter=",", dtype=np.int64)
    if data.shape[1] != 65:
        raise SystemExit(f"expected 65 columns, got {data.shape[1]}")
    x, y = data[:, :64], data[:, 64]
    if x.min() < 0 or x.max() > 16 or y.min() < 0 or y.max() > 9:
        raise SystemExit("unexpected value range in data file")
    return x, y


def stratified_split(y, rng):
    """Per class, shuffle and hold out round(20%) of the rows."""
    train_idx, held_idx = [], []
    for c in range(CLASSES):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        n_held = int(round(len(idx) * HELDOUT_FRACTION))
        held_idx.append(idx[:n_held])
        train_idx.append(idx[n_held:])
    train_idx = np.concatenate(train_idx)
    held_idx = np.concatenate(held_idx)
    rng.shuffle(train_idx)
    rng.shuffle(held_idx)
    return train_idx, held_idx


def forward(params, x):
    w1, b1, w2, b2 = params
    h_pre = x @ w1 + b1
    h = np.maximum(h_pre, 0.0)
    logits = h @ w2 + b2
    return h_pre, h, logits


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def train(x, y, rng):
    n = x.shape[0]
    w1 = rng.normal(0.0, np.sqrt(2.0 / 64), size=(64, HIDDEN))
    b1 = np.zeros(HIDDEN)
    w2 = rng.normal(0.0, np.sqrt(2.0 / HIDDEN), size=(HIDDEN, CLASSES))
    b2 = np.zeros(CLASSES)
    params = [w1, b1, w2, b2]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    onehot = np.eye(CLASSES)[y]
    step = 0
    for epoch in range(EPOCHS):
        order = rng.permutation(n)
        for start in range(0, n, BATCH):
            bi = order[start:start + BATCH]
            xb, tb = x[bi], onehot[bi]
            h_pre, h, logits = forward(params, xb)
            d_logits = (softmax(logits) - tb) / len(bi)
            g_w2 = h.T @ d_logits + WEIGHT_DECAY * params[2]
            g_b2 = d_logits.sum(axis=0)
            d_h = (d_logits @ params[2].T) * (h_pre > 0)
            g_w1 = xb.T @ d_h + WEIGHT_DECAY * params[0]
            g_b1 = d_h.sum(axis=0)
            step += 1
            for i, g in enumerate((g_w1, g_b1, g_w2, g_b2)):
                m[i] = beta1 * m[i] + (1 - beta1) * g
                v[i] = beta2 * v[i] + (1 - beta2) * g * g
                m_hat = m[i] / (1 - beta1 ** step)
                v_hat = v[i] / (1 - beta2 ** step)
                params[i] = params[i] - LEARNING_RATE * m_hat / (np.sqrt(v_hat) + eps)
        if (epoch + 1) % 100 == 0:
            _, _, logits = forward(params, x)
            p = softmax(logits)
            loss = -np.mean(np.log(p[np.arange(n), y] + 1e-12))
            acc = np.mean(logits.argmax(axis=1) == y)
            print(f"epoch {epoch + 1}: train loss {loss:.4f} acc {acc:.4f}")
    return params


def predict_fp32(params32, pixels):
    """Same arithmetic as the exported graph, in float32."""
    w1, b1, w2, b2 = params32
    x = pixels.astype(np.float32) * np.float32(1.0 / 16.0)
    h = np.maximum(x @ w1 + b1, np.float32(0.0))
    logits = h @ w2 + b2
    return logits.argmax(axis=1)


def build_onnx(params32):
    w1, b1, w2, b2 = params32
    inits = [
        numpy_helper.from_array(np.array(1.0 / 16.0, dtype=np.float32), "scale"),
        numpy_helper.from_array(w1, "W1"),
        numpy_helper.from_array(b1, "b1"),
        numpy_helper.from_array(w2, "W2"),
        numpy_helper.from_array(b2, "b2"),
    ]
    nodes = [
        helper.make_node("Mul", ["pixels", "scale"], ["scaled"], name="scale"),
        helper.make_node("MatMul", ["scaled", "W1"], ["fc1_mm"], name="fc1_matmul"),
        helper.make_node("Add", ["fc1_mm", "b1"], ["fc1"], name="fc1_add"),
        helper.make_node("Relu", ["fc1"], ["hidden"], name="relu"),
        helper.make_node("MatMul", ["hidden", "W2"], ["fc2_mm"], name="fc2_matmul"),
        helper.make_node("Add", ["fc2_mm", "b2"], ["logits"], name="fc2_add"),
        helper.make_node("Softmax", ["logits"], ["probabilities"], name="softmax", axis=1),
        helper.make_node("ArgMax", ["logits"], ["label"], name="argmax", axis=1, keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "digits_mlp",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["batch", 64])],
        [
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", CLASSES]),
            helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"]),
        ],
        inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 13)],
        producer_name="tandem-digits-train",
        producer_version="1",
        doc_string="MLP 64-64-10 for 8x8 digits; input raw pixel values 0..16",
    )
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def write_yaml(path, sha256, rows, n_train, n_held, accuracy):
    text = f"""name: digits
format: onnx
artifact: model.onnx
inputs:
  - {{name: pixels, datatype: FP32, shape: [-1, 64]}}
outputs:
  - {{name: probabilities, datatype: FP32, shape: [-1, 10]}}
  - {{name: label, datatype: INT64, shape: [-1]}}
max_batch_size: {MAX_BATCH_SIZE}
lineage:
  dataset: {{name: sklearn-digits, file: digits.csv.gz, sha256: {sha256}, rows: {rows}}}
  training_code: models/digits/train.py
  seed: {SEED}
  split: {{train: {n_train}, heldout: {n_held}}}
  metrics: {{heldout_accuracy: {accuracy:.4f}}}
  tags: {{architecture: "mlp-64-64-10", framework: numpy}}
"""
    with open(path, "w") as f:
        f.write(text)


def main():
    if len(sys.argv) != 2:
        raise SystemExit(f"usage: {sys.argv[0]} /path/to/digits.csv.gz")
    csv_path = sys.argv[1]
    with open(csv_path, "rb") as f:
        sha256 = hashlib.sha256(f.read()).hexdigest()

    pixels, labels = load(csv_path)
    rng = np.random.default_rng(SEED)
    train_idx, held_idx = stratified_split(labels, rng)

    x_train = pixels[train_idx].astype(np.float64) / 16.0
    params = train(x_train, labels[train_idx], rng)
    params32 = [p.astype(np.float32) for p in params]

    pred = predict_fp32(params32, pixels[held_idx])
    accuracy = float(np.mean(pred == labels[held_idx]))
    train_acc = float(np.mean(predict_fp32(params32, pixels[train_idx]) == labels[train_idx]))
    print(f"train: {len(train_idx)} rows, accuracy {train_acc:.4f}")
    print(f"heldout: {len(held_idx)} rows, accuracy {accuracy:.4f}")
    if accuracy < 0.95:
        raise SystemExit("held-out accuracy below 0.95; not writing artifacts")

    model = build_onnx(params32)
    onnx.save(model, os.path.join(OUT_DIR, "model.onnx"))
    write_yaml(os.path.join(OUT_DIR, "tandem-model.yaml"), sha256, len(labels),
               len(train_idx), len(held_idx), accuracy)
    with open(os.path.join(OUT_DIR, "heldout.csv"), "w") as f:
        for i in held_idx:
            f.write(",".join(str(int(v)) for v in pixels[i]) + f",{int(labels[i])}\n")
    print(f"wrote model.onnx, tandem-model.yaml, heldout.csv to {OUT_DIR}")


if __name__ == "__main__":
    main()
