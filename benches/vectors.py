#!/usr/bin/env python3
"""Benchmark inputs: the model's feature vectors of the 1,727 December holdout sessions.

They come out of the train/serve parity path, not the training script: the dataset rows are expanded
into events by models/train/shoppers_events.py (the parity converter), the Rust engine turns the
events into features (`leadscore features`), and the December rows are kept. LightGBM's and
onnxruntime's probabilities for the same rows (models/default/parity_probs.csv) come along so every
engine's output can be checked against them.

Writes target/bench/dec_vectors.json ({features, rows, ids, lgb, ort}) and dec_vectors.txt (one row
per line, space-separated, for the dependency-free compiled-tree harness).

Usage: python3 benches/vectors.py  (from the repo root; needs target/release/leadscore)
"""
import csv
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get(
    "LEADSCORE_SHOPPERS_CSV",
    os.path.join(ROOT, "..", "shared", "data", "online_shoppers", "online_shoppers_intention.csv"),
)
PARITY = os.path.join(ROOT, "target", "parity")
OUT = os.path.join(ROOT, "target", "bench")


def fresh(path, than):
    return os.path.exists(path) and os.path.getmtime(path) >= os.path.getmtime(than)


def main():
    os.makedirs(OUT, exist_ok=True)
    events = os.path.join(PARITY, "shoppers.ndjson")
    tables = os.path.join(PARITY, "shoppers_tables.json")
    script = os.path.join(ROOT, "models", "train", "shoppers_events.py")
    if not (fresh(events, script) and fresh(tables, script)):
        os.makedirs(PARITY, exist_ok=True)
        subprocess.run(
            [sys.executable, script, "--data", DATA, "--out", events, "--out-tables", tables],
            check=True,
        )
    cli = os.path.join(ROOT, "target", "release", "leadscore")
    out = subprocess.run(
        [cli, "features", "--model", os.path.join(ROOT, "models", "default"),
         "--events", events, "--site-table", tables, "--strict"],
        check=True, capture_output=True, text=True,
    ).stdout
    lines = out.splitlines()
    header = lines[0].split(",")
    by_visitor = {}
    for line in lines[1:]:
        cells = line.split(",")
        by_visitor[cells[0]] = [float(c) for c in cells[1:]]

    with open(DATA, newline="") as f:
        months = [r["Month"] for r in csv.DictReader(f)]
    with open(os.path.join(ROOT, "models", "default", "parity_probs.csv"), newline="") as f:
        probs = {int(r["row"]): (float(r["lgb_prob"]), float(r["ort_prob"])) for r in csv.DictReader(f)}

    ids = [i for i, m in enumerate(months) if m == "Dec"]
    rows = [by_visitor[f"shoppers-{i}"] for i in ids]
    doc = {
        "features": header[1:],
        "ids": ids,
        "rows": rows,
        "lgb": [probs[i][0] for i in ids],
        "ort": [probs[i][1] for i in ids],
    }
    with open(os.path.join(OUT, "dec_vectors.json"), "w") as f:
        json.dump(doc, f)
    with open(os.path.join(OUT, "dec_vectors.txt"), "w") as f:
        for r in rows:
            f.write(" ".join(repr(v) for v in r) + "\n")
    print(f"{len(rows)} December vectors x {len(doc['features'])} features -> target/bench/dec_vectors.json")


if __name__ == "__main__":
    main()
