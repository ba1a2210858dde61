"""Which decision times should `leadscore dataset` use by default? Episode ends or every event, judged on the
Online Shoppers' December (which must not get worse) and on the B2B world (whose rows must stop leaking elapsed
time).

Shoppers: every CSV row becomes its visitor's events (shoppers_events.py) and a purchase 1 s after the last
event when Revenue is TRUE (as tests/worker/loop.mjs sends them); `leadscore dataset` with the default bundle
builds the rows twice, `--decisions episodes` and `--decisions events`. One LightGBM (common.py's parameters,
tree count by 5-fold CV grouped by visitor, each visitor's rows weighing 1/n) is trained on Feb-Nov rows of
each; both models are then scored on December's rows of both kinds: episode ends (one per session, the whole
session seen) and events (every moment a score is served, each session weighing 1).

B2B: the same for rows by lead at episode ends, at events and at snapshots (0-30 days), split by lead creation
(the latest quarter of leads held out); a leak shows as held-out AUC near 1 from elapsed time alone
(`days_in_funnel` by itself is reported).

    .venv/bin/python models/train/study/decisions.py --leadscore target/release/leadscore --out target/decisions
"""
import argparse
import csv
import json
import os
import subprocess
import sys

import lightgbm as lgb
import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..", "..")
sys.path.insert(0, HERE)
from common import BASE_PARAMS, DATA  # noqa: E402

PY = sys.executable


def run(cmd):
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr[-2000:]}")
    return r


def load(path):
    with open(path, newline="") as f:
        r = csv.reader(f)
        header = next(r)
        rows = list(r)
    subject = np.array([x[1] for x in rows])
    d = np.array([int(x[2]) for x in rows], dtype=np.int64)
    y = np.array([int(x[4]) for x in rows])
    X = np.array([[float(v) if v not in ("", "NaN") else np.nan for v in x[5:]] for x in rows])
    return header[5:], subject, d, y, X


def per_subject_weights(subject):
    _, inv, counts = np.unique(subject, return_inverse=True, return_counts=True)
    return 1.0 / counts[inv]


def fit(X, y, groups, w):
    """Tree count by grouped 5-fold CV (weighted logloss), then one model on all rows."""
    p = BASE_PARAMS | {"num_threads": 2}
    best = []
    for tr, te in GroupKFold(5).split(X, y, groups):
        b = lgb.train(p, lgb.Dataset(X[tr], y[tr], weight=w[tr]), 600,
                      valid_sets=[lgb.Dataset(X[te], y[te], weight=w[te])],
                      callbacks=[lgb.early_stopping(50, verbose=False)])
        best.append(b.best_iteration or 600)
    n = int(np.mean(best))
    return lgb.train(p, lgb.Dataset(X, y, weight=w), n), n


def auc(y, p, w=None):
    if len(set(y.tolist())) < 2:
        return None
    return round(float(roc_auc_score(y, p, sample_weight=w)), 4)


def shoppers(args):
    out = args.out
    events, tables, outcomes = (os.path.join(out, f) for f in ("shoppers.ndjson", "tables.json", "outcomes.ndjson"))
    if not os.path.exists(events):
        run([PY, "models/train/shoppers_events.py", "--data", DATA, "--out", events, "--out-tables", tables])
    with open(DATA, newline="") as f:
        table = list(csv.DictReader(f))
    last = {}
    with open(events) as f:
        for line in f:
            e = json.loads(line)
            last[e["visitor_id"]] = max(last.get(e["visitor_id"], 0), e["ts"])
    with open(outcomes, "w") as f:
        for v, ts in last.items():
            r = int(v[len("shoppers-"):])
            if table[r]["Revenue"] == "TRUE":
                f.write(json.dumps({"id": f"purchase-{r}", "visitor_id": v, "type": "customer", "ts": ts + 1000}) + "\n")
    month = {f"shoppers-{i}": r["Month"] for i, r in enumerate(table)}
    sets = {}
    for kind in ("episodes", "events"):
        path = os.path.join(out, f"shoppers_{kind}.csv")
        run([args.leadscore, "dataset", "--model", "models/default", "--site-table", tables, "--events", events,
             "--outcomes", outcomes, "--label", "customer", "--window", "90d", "--as-of", "2100-01-01",
             "--decisions", kind, "--out", path])
        names, subject, d, y, X = load(path)
        dec = np.array([month[s] == "Dec" for s in subject])
        sets[kind] = dict(subject=subject, y=y, X=X, dec=dec)
    report = {"rows": {k: {"train": int((~s["dec"]).sum()), "december": int(s["dec"].sum()),
                           "december_positives": int(s["y"][s["dec"]].sum())} for k, s in sets.items()}}
    for trained_on, s in sets.items():
        tr = ~s["dec"]
        w = per_subject_weights(s["subject"][tr])
        model, trees = fit(s["X"][tr], s["y"][tr], s["subject"][tr], w)
        judged = {}
        for judged_on, t in sets.items():
            m = t["dec"]
            wt = per_subject_weights(t["subject"][m])
            judged[f"december_{judged_on}"] = auc(t["y"][m], model.predict(t["X"][m]), wt)
        report[f"trained_on_{trained_on}"] = dict(trees=trees, **judged)
    return report


def b2b(args):
    out = args.out
    events, outcomes = os.path.join(args.b2b, "events.ndjson"), os.path.join(args.b2b, "outcomes.ndjson")
    if not os.path.exists(events):
        raise SystemExit(f"{events}: run `make b2b-example` first")
    report = {}
    for kind in ("episodes", "events", "snapshots:0,7,14,21,30"):
        path = os.path.join(out, f"b2b_{kind.split(':')[0]}.csv")
        run([args.leadscore, "dataset", "--model", "models/train/b2b.card.json", "--events", events,
             "--outcomes", outcomes, "--label", "customer", "--by", "lead", "--decisions", kind,
             "--window", "60d", "--as-of", "2024-05-01", "--out", path])
        names, subject, d, y, X = load(path)
        first = {}
        for s, t in zip(subject, d):
            first[s] = min(first.get(s, t), t)
        # Lead creation ≈ its first row's subject start: hold out the latest quarter of leads by it.
        start = np.array([first[s] for s in subject])
        cut = np.quantile(np.array(sorted(set(first.values()))), 0.75)
        te = start >= cut
        w = per_subject_weights(subject)
        model, trees = fit(X[~te], y[~te], subject[~te], w[~te])
        age = X[:, names.index("days_in_funnel")] if "days_in_funnel" in names else None
        report[kind] = dict(rows=int(len(y)), positive_rate=round(float(y.mean()), 4), trees=trees,
                            held_out_rows=int(te.sum()), held_out_positive_rate=round(float(y[te].mean()), 4),
                            auc=auc(y[te], model.predict(X[te]), w[te]),
                            auc_elapsed_time_alone=None if age is None else auc(y[te], np.nan_to_num(age[te]), w[te]))
    return report


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--leadscore", default="target/release/leadscore")
    ap.add_argument("--out", default="target/decisions")
    ap.add_argument("--b2b", default="target/b2b", help="where make b2b-example wrote events.ndjson")
    args = ap.parse_args()
    os.makedirs(os.path.join(ROOT, args.out), exist_ok=True)
    args.out = os.path.join(ROOT, args.out)
    print(json.dumps({"shoppers": shoppers(args), "b2b": b2b(args)}, indent=1))


if __name__ == "__main__":
    main()
