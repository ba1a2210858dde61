"""Signal coverage on the B2B world: do the product's training rows carry what the world knows?

Two feature sets at the same rows (the same leads, decision times and labels: `leadscore dataset`'s CSV
from the B2B template, models/train/b2b.card.json):

* product: the engine's features, as the CSV holds them;
* reference: every table's information up to each decision time, computed here directly from the tables
  (touch counts by type, direction and channel; activities by type and outcome; sessions, page views,
  pricing and demo views, duration; the opportunity and its value; recency of each; every firmographic and
  contact attribute; days since creation; the account's other leads known and active in the last 30 days), at the times models/train/b2b_events.py gives the records.

The same LightGBM (fixed parameters, tree count by 5-fold CV on the training part, each lead's rows
weighing 1/n) is trained on each and scored on held-out rows under two splits: by lead creation (the
latest quarter of leads by creation time held out, all their rows) and by time (the latest quarter of
decision times). Prints one JSON report: AUC per split and feature set, with rows and positive rates.

    .venv/bin/python models/train/study/b2b_coverage.py --data ../shared/data/leadforge_b2b \\
        --dataset /tmp/b2b/snap.csv
"""
import argparse
import csv
import json
import os
import sys
from collections import defaultdict

import lightgbm as lgb
import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from b2b_events import TRAITS, event_times, read  # the same record times as the events

DAY = 86_400_000
PARAMS = {"objective": "binary", "learning_rate": 0.05, "num_leaves": 15, "min_data_in_leaf": 40,
          "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1, "lambda_l2": 1.0,
          "verbose": -1, "seed": 7, "num_threads": 2}


def load_dataset(path):
    with open(path, newline="") as f:
        r = csv.reader(f)
        header = next(r)
        rows = list(r)
    names = header[5:]
    lead = np.array([x[1] for x in rows])
    d = np.array([int(x[2]) for x in rows], dtype=np.int64)
    y = np.array([int(x[4]) for x in rows])
    X = np.array([[float(v) if v != "" else np.nan for v in x[5:]] for x in rows], dtype=np.float64)
    return names, lead, d, y, X


def reference(data, lead_ids, decisions):
    """Feature rows computed from the tables: everything dated at or before each decision time."""
    leads = {r["lead_id"]: r for r in read(data, "leads")}
    contacts = {r["contact_id"]: r for r in read(data, "contacts")}
    accounts = {r["account_id"]: r for r in read(data, "accounts")}
    recs = defaultdict(list)  # lead → (ts, key, value) facts
    for r in read(data, "touches"):
        t = event_times("touch", r["touch_timestamp"], r["touch_id"], "touches")
        for k in (f"touch_{r['touch_type']}", f"touch_{r['touch_type']}_{r['touch_direction']}",
                  f"touch_ch_{r['touch_channel']}", "touch_any"):
            recs[r["lead_id"]].append((t, k, 1.0))
    for r in read(data, "sales_activities"):
        t = event_times("activity", r["activity_timestamp"], r["activity_id"], "activities")
        for k in (f"act_{r['activity_type']}", f"act_{r['activity_type']}_{r['activity_outcome']}",
                  f"act_out_{r['activity_outcome']}", "act_any"):
            recs[r["lead_id"]].append((t, k, 1.0))
    for r in read(data, "sessions"):
        t = event_times("session", r["session_timestamp"], r["session_id"], "sessions")
        recs[r["lead_id"]] += [(t, "sessions", 1.0), (t, f"session_{r['session_type']}", 1.0),
                               (t, "page_views", float(r["page_views"])),
                               (t, "pricing_views", float(r["pricing_page_views"])),
                               (t, "demo_views", float(r["demo_page_views"])),
                               (t, "duration", float(r["session_duration_seconds"]))]
    for r in read(data, "opportunities"):
        t = event_times("opportunity", r["created_at"], r["opportunity_id"], "opportunities")
        recs[r["lead_id"]] += [(t, "opportunities", 1.0), (t, "acv", float(r["estimated_acv"] or 0))]
    keys = sorted({k for lst in recs.values() for _, k, _ in lst})
    cats = {}
    for name, (table, col) in TRAITS.items():
        src = {"leads": None, "contacts": contacts, "accounts": accounts}[table]
        vals = set()
        for l in leads.values():
            row = l if src is None else src[l["contact_id" if table == "contacts" else "account_id"]]
            vals.add(row[col])
        cats[name] = {v: i for i, v in enumerate(sorted(vals))}
    for lst in recs.values():
        lst.sort()
    # Colleagues: the other leads of the lead's account (each joins it at its creation, as the group
    # event 1 ms after the identify), with their latest activity.
    by_account = defaultdict(list)
    for lid, l in leads.items():
        joined = event_times("identify", l["lead_created_at"], lid, "leads") + 1
        times = sorted([joined] + [t for t, _, _ in recs[lid]])
        by_account[l["account_id"]].append((lid, joined, times))
    names = ([f"sum_{k}" for k in keys] + [f"days_since_{k}" for k in keys] + list(cats)
             + ["days_since_created", "colleagues", "colleagues_active_30d"])
    out = np.full((len(lead_ids), len(names)), np.nan)
    for i, (lid, d) in enumerate(zip(lead_ids, decisions)):
        l = leads[lid]
        sums, last = defaultdict(float), {}
        for t, k, v in recs[lid]:
            if t > d:
                break
            sums[k] += v
            last[k] = t
        row = [sums[k] for k in keys] + [(d - last[k]) / DAY if k in last else np.nan for k in keys]
        for name, (table, col) in TRAITS.items():
            src = l if table == "leads" else (contacts if table == "contacts" else accounts)[
                l["contact_id" if table == "contacts" else "account_id"]]
            row.append(cats[name][src[col]])
        row.append((d - event_times("identify", l["lead_created_at"], lid, "leads")) / DAY)
        latest = [max(t for t in times if t <= d) for other, joined, times in by_account[l["account_id"]]
                  if other != lid and joined <= d]
        row += [len(latest), sum(1 for t in latest if d - t <= 30 * DAY)]
        out[i] = row
    created = np.array([event_times("identify", leads[x]["lead_created_at"], x, "leads") for x in lead_ids])
    return names, out, created


def weights(groups):
    _, inv, counts = np.unique(groups, return_inverse=True, return_counts=True)
    return 1.0 / counts[inv]


def fit_auc(X, y, groups, train, test):
    w = weights(groups[train])
    folds = StratifiedGroupKFold(5, shuffle=True, random_state=11).split(X[train], y[train], groups[train])
    curves = []
    for tr, va in folds:
        ev = {}
        lgb.train(PARAMS, lgb.Dataset(X[train][tr], y[train][tr], weight=w[tr]), 600,
                  valid_sets=[lgb.Dataset(X[train][va], y[train][va], weight=w[va])], valid_names=["v"],
                  callbacks=[lgb.record_evaluation(ev)])
        curves.append(ev["v"]["binary_logloss"])
    n = int(np.argmin(np.mean(curves, axis=0))) + 1
    b = lgb.train(PARAMS, lgb.Dataset(X[train], y[train], weight=w), n)
    return float(roc_auc_score(y[test], b.predict(X[test]))), n


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--dataset", required=True, help="leadscore dataset CSV from the B2B template")
    args = ap.parse_args(argv)
    names, lead, d, y, X = load_dataset(args.dataset)
    rnames, R, created = reference(args.data, lead, d)
    splits = {
        "by_lead_creation": created >= np.quantile(np.unique(created), 0.75),
        "by_time": d >= np.quantile(d, 0.75),
    }
    report = {"rows": int(len(y)), "positive_rate": round(float(y.mean()), 4), "leads": int(len(set(lead))),
              "product_features": len(names), "reference_features": len(rnames), "splits": {}}
    for split, test_mask in splits.items():
        train, test = np.where(~test_mask)[0], np.where(test_mask)[0]
        r = {"train_rows": int(len(train)), "test_rows": int(len(test)),
             "train_positive_rate": round(float(y[train].mean()), 4),
             "test_positive_rate": round(float(y[test].mean()), 4)}
        if len(set(y[test])) < 2 or len(set(y[train])) < 2:
            r["verdict"] = "not judged: a part holds one label only"
            report["splits"][split] = r
            continue
        for tag, M in (("product", X), ("reference", R)):
            auc, n = fit_auc(M, y, lead, train, test)
            r[f"{tag}_auc"], r[f"{tag}_trees"] = round(auc, 4), n
        r["difference"] = round(r["reference_auc"] - r["product_auc"], 4)
        report["splits"][split] = r
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
