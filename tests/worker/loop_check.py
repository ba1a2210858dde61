#!/usr/bin/env python3
"""The learning loop's check against the source CSV (run by tests/worker/loop.mjs).

    loop_check.py features --csv DATA.csv --card card.json --dataset dataset.csv
        Every dataset row (subject shoppers-<r>) against CSV row r: each card feature that names a
        `column` must equal the CSV's value as float32, bit for bit, and the label must be Revenue.
        Prints JSON {rows, equal, mismatches: [...first 10], label_mismatches}.
    loop_check.py split --csv DATA.csv --dataset dataset.csv --holdout-month Dec --out-train A.csv --out-test B.csv
        Splits a dataset by its rows' CSV Month (the converter spreads each month over many years, so
        decision time does not order months), and writes the CSV's own rows of the training months
        as a table (`--out-table`) for the CSV-trained twin.

Standard library + numpy only (the training venv has numpy).
"""
import argparse
import csv
import json
import sys

import numpy as np


def csv_value(row: dict, spec: dict) -> np.float32:
    """As the trainer maps a card feature's column (sums in f64, then float32)."""
    enc = spec.get("encoding")
    total = 0.0
    for c in spec["column"].split("+"):
        total += float(enc[row[c]]) if enc else float(row[c])
    return np.float32(total)


def read_csv(path: str) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def row_index(subject: str) -> int:
    if not subject.startswith("shoppers-"):
        raise SystemExit(f"dataset subject {subject!r} is not a shoppers visitor")
    return int(subject[len("shoppers-"):])


def features(args) -> None:
    data = read_csv(args.csv)
    card = json.load(open(args.card))
    specs = [f for f in card["features"] if f.get("column")]
    out = {"rows": 0, "equal": 0, "mismatches": [], "label_mismatches": 0, "features_checked": len(specs)}
    for d in read_csv(args.dataset):
        r = row_index(d["subject_id"])
        out["rows"] += 1
        bad = [(s["name"], d[s["name"]], float(csv_value(data[r], s))) for s in specs
               if np.float32(float(d[s["name"]])) != csv_value(data[r], s)]
        if bad:
            if len(out["mismatches"]) < 10:
                out["mismatches"].append({"row": r, "features": bad})
        else:
            out["equal"] += 1
        if (data[r]["Revenue"] == "TRUE") != (d["label"] == "1"):
            out["label_mismatches"] += 1
    json.dump(out, sys.stdout)
    print()


def split(args) -> None:
    data = read_csv(args.csv)
    held = set(args.holdout_month.split(","))
    with open(args.dataset, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = list(reader)
    at = header.index("subject_id")
    parts = {True: [], False: []}
    train_rows = set()
    for line in rows:
        r = row_index(line[at])
        test = data[r]["Month"] in held
        parts[test].append(line)
        if not test:
            train_rows.add(r)
    # Both training tables in the CSV's row order: the trainer's random split assigns folds by row
    # position, so the same rows in another order (the dataset's decision-time order) would be
    # cross-validated on other folds — a different tree count, not a different loop.
    for part in parts.values():
        part.sort(key=lambda line: row_index(line[at]))
    for path, part in ((args.out_train, parts[False]), (args.out_test, parts[True])):
        with open(path, "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(header)
            w.writerows(part)
    if args.out_table:
        with open(args.out_table, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(data[0].keys()), lineterminator="\n")
            w.writeheader()
            w.writerows(data[r] for r in sorted(train_rows))
    json.dump({"train": len(parts[False]), "test": len(parts[True])}, sys.stdout)
    print()


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("features")
    f.add_argument("--csv", required=True)
    f.add_argument("--card", required=True)
    f.add_argument("--dataset", required=True)
    s = sub.add_parser("split")
    s.add_argument("--csv", required=True)
    s.add_argument("--dataset", required=True)
    s.add_argument("--holdout-month", default="Dec")
    s.add_argument("--out-train", required=True)
    s.add_argument("--out-test", required=True)
    s.add_argument("--out-table")
    args = ap.parse_args()
    features(args) if args.cmd == "features" else split(args)


if __name__ == "__main__":
    main()
