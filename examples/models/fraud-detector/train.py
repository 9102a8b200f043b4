#!/usr/bin/env python3
"""Train the example fraud detector: logistic regression on synthetic card transactions.

Pure Python (no numpy), deterministic (fixed seed). Writes `model.safetensors` (weights and
bias, float32, the safetensors format) and prints the evaluation numbers that `model.yaml`
declares, so the manifest's claims can be re-checked: `python3 train.py --check`.
"""
import json
import math
import random
import struct
import sys

FEATURES = ["amount_z", "foreign", "night", "new_merchant", "velocity_z", "age_over_60"]


def make_data(n, rng, shift=0.0):
    rows = []
    for _ in range(n):
        x = [rng.gauss(shift, 1.0), float(rng.random() < 0.2), float(rng.random() < 0.3),
             float(rng.random() < 0.25), rng.gauss(shift, 1.0), float(rng.random() < 0.3)]
        logit = -3.0 + 3.5 * x[0] + 3.0 * x[1] + 1.5 * x[2] + 2.5 * x[3] + 3.5 * x[4]
        y = 1 if rng.random() < 1 / (1 + math.exp(-logit)) else 0
        rows.append((x, y))
    return rows


def predict(w, b, x):
    return 1 / (1 + math.exp(-(sum(wi * xi for wi, xi in zip(w, x)) + b)))


def train(rows, epochs=60, lr=0.1):
    w, b = [0.0] * len(FEATURES), 0.0
    for _ in range(epochs):
        for x, y in rows:
            g = predict(w, b, x) - y
            w = [wi - lr * g * xi for wi, xi in zip(w, x)]
            b -= lr * g
    return w, b


def evaluate(w, b, rows):
    tp = fp = fn = tn = 0
    pos = {0: [0, 0], 1: [0, 0]}
    for x, y in rows:
        p = 1 if predict(w, b, x) >= 0.5 else 0
        tp += p and y
        fp += p and not y
        fn += (not p) and y
        tn += (not p) and (not y)
        g = int(x[5])
        pos[g][0] += p
        pos[g][1] += 1
    acc = (tp + tn) / len(rows)
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    dp = abs(pos[0][0] / pos[0][1] - pos[1][0] / pos[1][1])
    return {"accuracy": acc, "f1": f1, "precision": prec, "recall": rec, "demographic_parity": dp}


def psi(expected, actual, bins=10):
    lo, hi = min(expected), max(expected)
    edges = [lo + (hi - lo) * i / bins for i in range(1, bins)]

    def hist(v):
        counts = [0] * bins
        for a in v:
            counts[sum(a > e for e in edges)] += 1
        return [max(c / len(v), 1e-4) for c in counts]

    e, a = hist(expected), hist(actual)
    return sum((ai - ei) * math.log(ai / ei) for ei, ai in zip(e, a))


def safetensors(tensors):
    header, blob = {}, b""
    for name, values in tensors:
        data = struct.pack(f"<{len(values)}f", *values)
        header[name] = {"dtype": "F32", "shape": [len(values)], "data_offsets": [len(blob), len(blob) + len(data)]}
        blob += data
    header["__metadata__"] = {"features": ",".join(FEATURES), "format": "wharf-example-logreg"}
    h = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + blob


def main():
    rng = random.Random(20261122)
    data = make_data(6000, rng)
    train_rows, test_rows = data[:4000], data[4000:]
    w, b = train(train_rows)
    m = evaluate(w, b, test_rows)
    recent = make_data(1000, random.Random(7), shift=0.05)
    m["drift_psi"] = psi([x[0] for x, _ in train_rows], [x[0] for x, _ in recent])
    out = safetensors([("weight", w), ("bias", [b])])
    if "--check" in sys.argv:
        with open("model.safetensors", "rb") as f:
            assert f.read() == out, "model.safetensors differs from a fresh training run"
    else:
        with open("model.safetensors", "wb") as f:
            f.write(out)
    print(json.dumps({k: round(v, 4) for k, v in m.items()}, indent=2))


if __name__ == "__main__":
    main()
