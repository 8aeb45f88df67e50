#!/usr/bin/python3
"""Writes the two request bodies bench/gateway sends, deterministically.

  digits.json  one row of the digits model: the first held-out image (64 FP32 values)
  wide.json    one row of the wide model: a 3x224x224 FP32 image (150 528 values, ~1.3 MB),
               pseudo-random pixel values v/255 from a fixed-seed LCG, printed with 6
               significant digits, as a client serialising an image tensor would send them

Usage: payloads.py REPO_ROOT OUT_DIR
Also writes OUT_DIR/payloads.json: sizes and the expected outputs, for the script's sanity check.
"""

import json
import os
import sys

WIDE_SHAPE = (1, 3, 224, 224)
SEED = 20261128


def digits_body(repo):
    with open(os.path.join(repo, "models", "digits", "heldout.csv"), encoding="utf-8") as f:
        row = [int(v) for v in f.readline().strip().split(",")]
    pixels, label = row[:64], row[64]
    body = {"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 64], "data": pixels}]}
    return json.dumps(body, separators=(",", ":")), {"label": label}


def wide_body():
    n = WIDE_SHAPE[1] * WIDE_SHAPE[2] * WIDE_SHAPE[3]
    x = SEED
    values = []
    for _ in range(n):
        x = (x * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        values.append(((x >> 40) % 256) / 255.0)
    text = ",".join("%.6g" % v for v in values)
    body = ('{"inputs":[{"name":"image","datatype":"FP32","shape":[%s],"data":[%s]}]}'
            % (",".join(str(d) for d in WIDE_SHAPE), text))
    plane = n // 3
    means = [sum(float("%.6g" % v) for v in values[c * plane:(c + 1) * plane]) / plane for c in range(3)]
    return body, {"mean": means, "values": n}


def main():
    repo, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    info = {}
    for name, (body, expect) in (("digits", digits_body(repo)), ("wide", wide_body())):
        path = os.path.join(out, name + ".json")
        with open(path, "w", encoding="utf-8") as f:
            f.write(body)
        info[name] = {"file": path, "bytes": len(body.encode()), "expect": expect}
    with open(os.path.join(out, "payloads.json"), "w", encoding="utf-8") as f:
        json.dump(info, f, indent=1)


if __name__ == "__main__":
    main()
