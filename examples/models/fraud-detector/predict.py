#!/usr/bin/env python3
"""Score transactions with the example fraud detector.

Reads JSON objects (one per line) with the feature names below on stdin, writes the fraud
probability for each. Loads `model.safetensors` with the standard library only.

    echo '{"amount_z": 2.1, "foreign": 1, "night": 0, "new_merchant": 1, "velocity_z": 1.5, "age_over_60": 0}' | python3 predict.py
"""
import json
import math
import os
import struct
import sys


def load(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        blob = f.read()
    tensors = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        start, end = meta["data_offsets"]
        tensors[name] = list(struct.unpack(f"<{(end - start) // 4}f", blob[start:end]))
    return tensors, header["__metadata__"]["features"].split(",")


def main():
    tensors, features = load(os.path.join(os.path.dirname(os.path.abspath(__file__)), "model.safetensors"))
    w, b = tensors["weight"], tensors["bias"][0]
    for line in sys.stdin:
        if line.strip():
            x = json.loads(line)
            z = sum(wi * float(x[f]) for wi, f in zip(w, features)) + b
            print(json.dumps({"fraud_probability": round(1 / (1 + math.exp(-z)), 4)}))


if __name__ == "__main__":
    main()
