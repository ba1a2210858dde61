#!/usr/bin/env python3
"""Train the default leadscore model on the Online Shoppers dataset and write the bundle models/default/.

Writes model.onnx (one binary TreeEnsembleClassifier, ZipMap off), card.json (features, demo site tables,
Platt calibration, tiers, TreeSHAP node covers, provenance, metrics), golden.json (golden vectors for
`leadscore check`) and parity_probs.csv (LightGBM vs onnxruntime probability of every dataset row).

Features are dataset columns the Rust engine reproduces from live events (see shoppers_events.py);
Month and Region are never used. Split: test = December (reported only). On Feb-Nov, the whole pipeline is
cross-validated (seeded, label-stratified 5 folds): the tree count is where the folds' mean validation
logloss is lowest (early stopping over five held-out slices instead of one), the model is then trained on
all of Feb-Nov, and Platt calibration is fitted on the out-of-fold margins (every row held out from the
model that scored it). Hyperparameters were chosen on Feb-Nov only (see README.md).

Deterministic: fixed seeds, deterministic LightGBM, fixed dates; the same CSV gives the same files.

    .venv/bin/python models/train/train.py            # from the repo root
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import os
import sys
import time

import lightgbm as lgb
import numpy as np
import onnx
import onnxmltools
import onnxruntime as ort
import sklearn
from onnxmltools.convert.common.data_types import FloatTensorType
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DATA_REL = "../shared/data/online_shoppers/online_shoppers_intention.csv"  # relative to the repo root
NAME = "default"
DATE = "20261123"  # fixed model date (model_version); never the wall clock
SPLIT_SEED = 20261123  # golden-row sample
TRAIN_SEED = 7
CV_FOLDS = 5
CV_SEED = 11
MAX_TREES = 800
TARGET_OPSET = 15
GOLDEN_ROWS = 300

# Chosen on Feb-Nov only: seeded 5-fold CV (AUC; logloss as tie-break), learning rate by the nested
# check's pre-declared cost rule (the fewest nodes within noise of the best). See README.md.
PARAMS = {
    "objective": "binary",
    "metric": "binary_logloss",
    "num_leaves": 31,
    "max_depth": -1,
    "learning_rate": 0.12,
    "min_data_in_leaf": 100,
    "lambda_l2": 5.0,
    "feature_fraction": 0.8,
    "bagging_fraction": 1.0,
    "bagging_freq": 0,
    "seed": TRAIN_SEED,
    "feature_fraction_seed": 3,
    "bagging_seed": 5,
    "data_random_seed": 9,
    "deterministic": True,
    "force_row_wise": True,
    "num_threads": 2,
    "verbose": -1,
}
MONOTONE = {"PageValues": 1}

CODES = json.load(open(os.path.join(HERE, "codes.json")))
VISITOR_ENCODING = {"New_Visitor": 0, "Returning_Visitor": 1, "Other": 2}
WEEKEND_ENCODING = {"FALSE": 0, "TRUE": 1}
CATS = ["administrative", "informational", "product_related"]


def feature_specs() -> list[dict]:
    """Model inputs in order: card `features` entries (kind + params + dataset column)."""
    def pv(name, cats, column):
        return {"name": name, "kind": "page_views", "params": {"categories": cats, "scope": "session"},
                "column": column}

    def es(name, cats, column):
        return {"name": name, "kind": "engaged_seconds", "params": {"categories": cats, "scope": "session"},
                "column": column}

    def stat(name, s, column):
        return {"name": name, "kind": "page_stat_mean", "params": {"stat": s}, "column": column}

    return [
        pv("admin_pages", ["administrative"], "Administrative"),
        es("admin_seconds", ["administrative"], "Administrative_Duration"),
        pv("info_pages", ["informational"], "Informational"),
        es("info_seconds", ["informational"], "Informational_Duration"),
        pv("product_pages", ["product_related"], "ProductRelated"),
        es("product_seconds", ["product_related"], "ProductRelated_Duration"),
        stat("bounce_rate", "bounce_rate", "BounceRates"),
        stat("exit_rate", "exit_rate", "ExitRates"),
        stat("page_value", "page_value", "PageValues"),
        {"name": "special_day", "kind": "special_day", "params": {}, "column": "SpecialDay"},
        {"name": "channel", "kind": "channel",
         "params": {"touch": "first", "scope": "session", "codes": CODES["channel"], "default": 0},
         "column": "TrafficType"},
        {"name": "visitor_type", "kind": "visitor_type",
         "params": {"codes": {"new": 0, "returning": 1, "unknown": 2}},
         "column": "VisitorType", "encoding": VISITOR_ENCODING},
        {"name": "weekend", "kind": "weekend", "params": {}, "column": "Weekend", "encoding": WEEKEND_ENCODING},
    ]


def demo_site(rows: list[dict]) -> dict:
    """Site tables of the demo B2B / e-commerce site. page_stats: per-category typical values, estimated
    from the dataset (median row stats of sessions that stayed in one category), rounded."""
    def med(sel, col):
        v = sorted(float(r[col]) for r in rows if sel(r))
        return v[len(v) // 2]

    def q(sel, col, p):
        v = sorted(float(r[col]) for r in rows if sel(r) and float(r[col]) > 0)
        return v[int(p * (len(v) - 1))]

    only = {
        "administrative": lambda r: int(r["Administrative"]) > 0 and int(r["ProductRelated"]) == 0
        and int(r["Informational"]) == 0,
        "informational": lambda r: int(r["Informational"]) > 0 and int(r["Administrative"]) == 0,
        "product_related": lambda r: int(r["ProductRelated"]) > 0 and int(r["Administrative"]) == 0
        and int(r["Informational"]) == 0,
    }
    typ = {c: [round(med(only[c], "BounceRates"), 3), round(med(only[c], "ExitRates"), 3)] for c in CATS}
    anyp = lambda r: True  # noqa: E731
    pv_mid = round(q(anyp, "PageValues", 0.5), 1)   # median page value of pages that precede purchases
    pv_high = round(q(anyp, "PageValues", 0.9), 1)  # top decile
    a, i, p = typ["administrative"], typ["informational"], typ["product_related"]
    pages = {
        "/": [0.02, 0.03, 0.0],
        "/products": [p[0], p[1], round(pv_mid / 2, 1)],
        "/pricing": [round(p[0] / 2, 3), round(p[1] / 2, 3), pv_high],
        "/demo": [round(a[0] / 2, 3), round(a[1] / 2, 3), pv_high],
        "/signup": [a[0], a[1], pv_mid],
        "/login": [a[0], a[1], 0.0],
        "/account": [a[0], a[1], 0.0],
        "/cart": [round(p[0] / 2, 3), p[1], pv_mid],
        "/checkout": [round(p[0] / 2, 3), p[1], pv_high],
        "/blog": [i[0], i[1], 0.0],
        "/docs": [i[0], i[1], 0.0],
        "/help": [i[0], i[1], 0.0],
        "/about": [i[0], i[1], 0.0],
    }
    return {
        "timezone_offset_minutes": 0,
        "session_timeout_minutes": 30,
        "page_rules": [
            {"prefix": "/account", "tags": ["administrative"]},
            {"prefix": "/login", "tags": ["administrative"]},
            {"prefix": "/signup", "tags": ["administrative"]},
            {"prefix": "/demo", "tags": ["administrative", "demo"]},
            {"prefix": "/blog", "tags": ["informational"]},
            {"prefix": "/docs", "tags": ["informational"]},
            {"prefix": "/help", "tags": ["informational"]},
            {"prefix": "/about", "tags": ["informational"]},
            {"prefix": "/products", "tags": ["product_related"]},
            {"prefix": "/pricing", "tags": ["product_related", "pricing"]},
            {"prefix": "/cart", "tags": ["product_related"]},
            {"prefix": "/checkout", "tags": ["product_related"]},
        ],
        "default_tags": ["other"],
        "page_stats": {"columns": ["bounce_rate", "exit_rate", "page_value"], "pages": pages},
        "special_days": [{"month": 2, "day": 14}, {"month": 5, "weekday": 7, "nth": 2}],
        "special_day_peak_days_before": 7,
        "special_day_width_days": 5,
    }


# ---------------------------------------------------------------------------------------------------

def column(rows: list[dict], spec: dict) -> np.ndarray:
    """float32 feature values of a card feature from the dataset (sums in f64, then float32)."""
    enc = spec.get("encoding")
    total = np.zeros(len(rows))
    for c in spec["column"].split("+"):
        if enc:
            total += np.array([enc[r[c]] for r in rows], dtype=np.float64)
        else:
            total += np.array([float(r[c]) for r in rows], dtype=np.float64)
    return total.astype(np.float32)


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def cv_tree_count(params: dict, X: np.ndarray, y: np.ndarray) -> tuple[int, np.ndarray, list]:
    """Whole-pipeline CV on the given rows: seeded, label-stratified folds; returns the tree count with
    the lowest mean validation logloss, the out-of-fold margins at that count and the mean curve."""
    folds = StratifiedKFold(CV_FOLDS, shuffle=True, random_state=CV_SEED).split(X, y)
    runs = []
    for tr, va in folds:
        dtr = lgb.Dataset(X[tr], y[tr], free_raw_data=False)
        dva = lgb.Dataset(X[va], y[va], reference=dtr)
        ev: dict = {}
        b = lgb.train(params, dtr, num_boost_round=MAX_TREES, valid_sets=[dva], valid_names=["v"],
                      callbacks=[lgb.record_evaluation(ev)])
        runs.append((va, b, ev["v"]["binary_logloss"]))
    curve = np.mean([c for _, _, c in runs], axis=0)
    best = int(np.argmin(curve)) + 1
    assert best < MAX_TREES, "the CV curve is still falling at MAX_TREES"
    oof = np.zeros(len(y))
    for va, b, _ in runs:
        oof[va] = b.predict(X[va], raw_score=True, num_iteration=best)
    return best, oof, curve.tolist()


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def metrics(y, p, name: str, extra: dict | None = None) -> dict:
    m = {"period": name, "rows": int(len(y)), "positives": int(y.sum()),
         "auc": round(float(roc_auc_score(y, p)), 6),
         "brier": round(float(brier_score_loss(y, p)), 6),
         "logloss": round(float(log_loss(y, p, labels=[0, 1])), 6),
         "mean_prob": round(float(p.mean()), 6), "positive_rate": round(float(y.mean()), 6)}
    if extra:
        m.update(extra)
    return m


def floor32(t: float) -> np.float32:
    """Largest float32 <= t: for float32 x, `x <= t` iff `x <= floor32(t)` (exact LightGBM parity)."""
    f = np.float32(t)
    if float(f) > t:
        f = np.nextafter(f, np.float32(-np.inf))
    return f


def tree_nodes(onnx_model) -> tuple[onnx.NodeProto, dict]:
    node = [n for n in onnx_model.graph.node if n.op_type == "TreeEnsembleClassifier"]
    assert len(node) == 1, "expected one TreeEnsembleClassifier"
    return node[0], {a.name: a for a in node[0].attribute}


def map_trees(onnx_model, dump: dict) -> tuple[list, list, int]:
    """Walks each ONNX tree and the LightGBM dump tree in parallel from the root.

    Returns per tree, per ONNX node id: (count cover, hessian cover), and sets every ONNX threshold to
    floor32 of the LightGBM double threshold. Asserts features, modes and thresholds agree."""
    node, attr = tree_nodes(onnx_model)
    g = lambda k: list(onnx.helper.get_attribute_value(attr[k]))  # noqa: E731
    tids, nids, feats, vals = g("nodes_treeids"), g("nodes_nodeids"), g("nodes_featureids"), g("nodes_values")
    modes = [m.decode() if isinstance(m, bytes) else m for m in g("nodes_modes")]
    tnext, fnext = g("nodes_truenodeids"), g("nodes_falsenodeids")
    where = {(t, n): i for i, (t, n) in enumerate(zip(tids, nids))}
    trees = dump["tree_info"]
    assert len(set(tids)) == len(trees)
    counts, hess = [], []
    changed = 0
    for t, info in enumerate(trees):
        ids = [n for tt, n in zip(tids, nids) if tt == t]
        children = {tnext[where[(t, n)]] for n in ids if modes[where[(t, n)]] != "LEAF"} | \
                   {fnext[where[(t, n)]] for n in ids if modes[where[(t, n)]] != "LEAF"}
        roots = [n for n in ids if n not in children]
        assert len(roots) == 1
        cnt = [0] * (max(ids) + 1)
        hes = [0.0] * (max(ids) + 1)
        stack = [(roots[0], info["tree_structure"])]
        seen = 0
        while stack:
            nid, lg = stack.pop()
            i = where[(t, nid)]
            seen += 1
            if "split_index" in lg:
                assert modes[i] == "BRANCH_LEQ" and lg["decision_type"] == "<=", (t, nid, modes[i])
                assert feats[i] == lg["split_feature"], (t, nid)
                thr = float(lg["threshold"])
                assert np.float32(vals[i]) == np.float32(thr), (t, nid, vals[i], thr)
                f = floor32(thr)
                if f != np.float32(vals[i]):
                    changed += 1
                vals[i] = float(f)
                cnt[nid], hes[nid] = int(lg["internal_count"]), float(lg["internal_weight"])
                stack.append((tnext[i], lg["left_child"]))
                stack.append((fnext[i], lg["right_child"]))
            else:
                assert modes[i] == "LEAF", (t, nid)
                cnt[nid], hes[nid] = int(lg["leaf_count"]), float(lg["leaf_weight"])
        assert seen == len(ids), (t, seen, len(ids))
        counts.append(cnt)
        hess.append(hes)
    attr["nodes_values"].CopyFrom(onnx.helper.make_attribute("nodes_values", vals))
    return counts, hess, changed


# ---- TreeSHAP (Lundberg et al. 2018, Algorithm 2), used only to check which cover LightGBM uses ----

def _tree_arrays(tree: dict):
    left, right, feat, thr, val, cnt, hes = [], [], [], [], [], [], []

    def add(n):
        k = len(left)
        for a in (left, right, feat, thr, val, cnt, hes):
            a.append(None)
        if "split_index" in n:
            feat[k], thr[k] = n["split_feature"], float(n["threshold"])
            cnt[k], hes[k], val[k] = n["internal_count"], n["internal_weight"], n["internal_value"]
            left[k] = add(n["left_child"])
            right[k] = add(n["right_child"])
        else:
            left[k] = right[k] = -1
            cnt[k], hes[k], val[k] = n["leaf_count"], n["leaf_weight"], n["leaf_value"]
        return k

    add(tree["tree_structure"])
    return left, right, feat, thr, val, cnt, hes


def tree_shap(x, arrays, cover, phi):
    left, right, feat, thr, val = arrays[:5]

    def extend(m, pz, po, pi):
        l = len(m)
        m.append([pi, pz, po, 1.0 if l == 0 else 0.0])
        for i in range(l - 1, -1, -1):
            m[i + 1][3] += po * m[i][3] * (i + 1) / (l + 1)
            m[i][3] = pz * m[i][3] * (l - i) / (l + 1)

    def unwind(m, i):
        l = len(m) - 1
        n = m[l][3]
        one, zero = m[i][2], m[i][1]
        for j in range(l - 1, -1, -1):
            if one != 0:
                t = m[j][3]
                m[j][3] = n * (l + 1) / ((j + 1) * one)
                n = t - m[j][3] * zero * (l - j) / (l + 1)
            else:
                m[j][3] = m[j][3] * (l + 1) / (zero * (l - j))
        for j in range(i, l):
            m[j][0], m[j][1], m[j][2] = m[j + 1][0], m[j + 1][1], m[j + 1][2]
        m.pop()

    def unwound_sum(m, i):
        l = len(m) - 1
        one, zero = m[i][2], m[i][1]
        total = 0.0
        if one != 0:
            n = m[l][3]
            for j in range(l - 1, -1, -1):
                t = n * (l + 1) / ((j + 1) * one)
                total += t
                n = m[j][3] - t * zero * (l - j) / (l + 1)
        else:
            for j in range(l - 1, -1, -1):
                total += m[j][3] / (zero * (l - j) / (l + 1))
        return total

    def recurse(j, m, pz, po, pi):
        m = [list(e) for e in m]
        extend(m, pz, po, pi)
        if left[j] == -1:
            for i in range(1, len(m)):
                phi[m[i][0]] += unwound_sum(m, i) * (m[i][2] - m[i][1]) * val[j]
            return
        hot, cold = (left[j], right[j]) if x[feat[j]] <= thr[j] else (right[j], left[j])
        iz = io = 1.0
        k = next((k for k in range(1, len(m)) if m[k][0] == feat[j]), None)
        if k is not None:
            iz, io = m[k][1], m[k][2]
            unwind(m, k)
        recurse(hot, m, iz * cover[hot] / cover[j], io, feat[j])
        recurse(cold, m, iz * cover[cold] / cover[j], 0.0, feat[j])

    recurse(0, [], 1.0, 1.0, -1)
    leaves = [k for k in range(len(left)) if left[k] == -1]
    return sum(cover[k] / cover[0] * val[k] for k in leaves)


def shap_check(dump: dict, X: np.ndarray, contrib: np.ndarray) -> dict:
    trees = [_tree_arrays(t) for t in dump["tree_info"]]
    err = {}
    for name, ci in (("count", 5), ("hessian", 6)):
        worst = 0.0
        for r in range(len(X)):
            phi = np.zeros(X.shape[1] + 1)
            for a in trees:
                if len(a[0]) == 1:  # a single leaf: only the bias
                    phi[-1] += a[4][0]
                    continue
                phi[-1] += tree_shap(X[r].astype(np.float64), a, a[ci], phi)
            worst = max(worst, float(np.abs(phi - contrib[r]).max()))
        err[name] = worst
    return err


# ---------------------------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=os.path.normpath(os.path.join(REPO, DATA_REL)))
    ap.add_argument("--out", default=os.path.join(REPO, "models", NAME))
    args = ap.parse_args()
    t0 = time.perf_counter()
    os.makedirs(args.out, exist_ok=True)

    with open(args.data, newline="") as f:
        rows = list(csv.DictReader(f))
    specs = feature_specs()
    names = [s["name"] for s in specs]
    X = np.column_stack([column(rows, s) for s in specs])
    y = np.array([r["Revenue"] == "TRUE" for r in rows], dtype=np.int64)
    dec = np.array([r["Month"] == "Dec" for r in rows])
    pool = np.flatnonzero(~dec)  # Feb-Nov
    test = np.flatnonzero(dec)

    params = dict(PARAMS, monotone_constraints=[MONOTONE.get(s["column"], 0) for s in specs])
    best, oof, curve = cv_tree_count(params, X[pool], y[pool])
    booster = lgb.train(params, lgb.Dataset(X[pool], y[pool], feature_name=names), num_boost_round=best)
    assert booster.num_trees() == best

    raw = booster.predict(X, raw_score=True)
    p_lgb = booster.predict(X)
    cal = LogisticRegression(C=np.inf, solver="lbfgs", tol=1e-10, max_iter=1000)
    cal.fit(oof.reshape(-1, 1), y[pool])
    a, b = float(cal.coef_[0][0]), float(cal.intercept_[0])
    p_cal = sigmoid(a * raw + b)
    p_oof = sigmoid(a * oof + b)  # Feb-Nov, each row scored by a model that did not see it

    # tiers on ai_score = 100 * calibrated probability (out-of-fold, Feb-Nov): hot ~ top decile;
    # warm = twice the average conversion rate
    sc = np.sort(100 * p_oof)[::-1]
    hot = int(math.floor(sc[int(0.10 * len(sc))]))
    warm = int(round(200 * y[pool].mean()))

    def tier_stats(idx, p=p_cal):
        s = 100 * p[idx]
        out = {}
        for tname, lo, hi in (("hot", hot, 1e9), ("warm", warm, hot), ("cold", -1, warm)):
            m = (s >= lo) & (s < hi)
            out[tname] = {"share": round(float(m.mean()), 4),
                          "conversion": round(float(y[idx][m].mean()), 4) if m.any() else None}
        return out

    # ---- export
    onnx_model = onnxmltools.convert_lightgbm(
        booster, name="leadscore_default", initial_types=[("input", FloatTensorType([None, len(specs)]))],
        zipmap=False, target_opset=TARGET_OPSET)
    dump = booster.dump_model()
    covers, hessians, changed = map_trees(onnx_model, dump)
    onnx_model.producer_name, onnx_model.producer_version = "leadscore-train", "1"
    # onnxmltools emits opset_import in hash-dependent order: sort it so the file is byte-stable
    opsets = sorted((o.domain, o.version) for o in onnx_model.opset_import)
    del onnx_model.opset_import[:]
    onnx_model.opset_import.extend(onnx.helper.make_opsetid(d, v) for d, v in opsets)
    onnx.checker.check_model(onnx_model)
    ops = sorted({(n.domain, n.op_type) for n in onnx_model.graph.node})
    model_path = os.path.join(args.out, "model.onnx")
    with open(model_path, "wb") as f:
        f.write(onnx_model.SerializeToString(deterministic=True))
    model_sha = sha256(model_path)

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(model_path, so, providers=["CPUExecutionProvider"])
    outs = [o.name for o in sess.get_outputs()]
    p_ort = sess.run(None, {"input": X})[outs.index("probabilities")][:, 1].astype(np.float64)
    parity = float(np.abs(p_ort - p_lgb).max())
    assert parity < 1e-5, parity

    # TreeSHAP: which cover reproduces LightGBM pred_contrib?
    rs = np.random.RandomState(SPLIT_SEED + 1)
    golden_rows = sorted(set(rs.choice(len(rows), GOLDEN_ROWS, replace=False).tolist())
                         | {i for i in range(len(rows)) if X[i, :6:2].sum() == 0})
    contrib = booster.predict(X[golden_rows], pred_contrib=True)
    shap_err = shap_check(dump, X[golden_rows[:12]], contrib[:12])
    assert shap_err["count"] < 1e-9, shap_err
    assert np.allclose(contrib.sum(axis=1), raw[golden_rows], atol=1e-9)

    # ---- metrics
    m_test = metrics(y[test], p_cal[test], "Dec", {
        "auc_uncalibrated": round(float(roc_auc_score(y[test], p_lgb[test])), 6),
        "brier_uncalibrated": round(float(brier_score_loss(y[test], p_lgb[test])), 6),
        "tiers": tier_stats(test)})
    oof_all = np.full(len(y), np.nan)
    oof_all[pool] = p_oof
    m_oof = metrics(y[pool], p_oof, "Feb-Nov out-of-fold (5 folds, the models of the CV)", {
        "brier_uncalibrated": round(float(brier_score_loss(y[pool], sigmoid(oof))), 6),
        "tiers": tier_stats(pool, oof_all)})
    m_train = metrics(y[pool], p_cal[pool], "Feb-Nov, in sample (the shipped model was trained on it)")

    # ---- golden vectors and parity
    def f32s(v):  # shortest decimal of a float32: exact in any JSON reader
        return float(str(np.float32(v)))

    golden = {"features": names, "rows": [
        {"row": int(r), "x": [f32s(v) for v in X[r]], "lgb_prob": float(p_lgb[r]), "ort_prob": float(p_ort[r]),
         "lgb_contrib": [float(c) for c in contrib[k]]} for k, r in enumerate(golden_rows)]}
    with open(os.path.join(args.out, "golden.json"), "w", newline="\n") as f:
        json.dump(golden, f, separators=(",", ":"))
        f.write("\n")
    with open(os.path.join(args.out, "parity_probs.csv"), "w", newline="\n") as f:
        f.write("row,lgb_prob,ort_prob\n")
        for r in range(len(rows)):
            f.write(f"{r},{float(p_lgb[r])!r},{float(p_ort[r])!r}\n")

    card = {
        "schema_version": 1,
        "name": NAME,
        "model_version": f"{NAME}-{DATE}-{model_sha[:8]}",
        "model": {"file": "model.onnx", "sha256": model_sha, "n_features": len(specs), "n_trees": best},
        "features": specs,
        "site": demo_site(rows),
        "calibration": {"method": "platt", "a": a, "b": b},
        "tiers": {"hot": hot, "warm": warm},
        "explain": {"node_covers": covers},
        "training": {
            "data": {"path": DATA_REL, "sha256": sha256(args.data), "rows": len(rows),
                     "source": "UCI Online Shoppers Purchasing Intention (Sakar & Kastro), CC BY 4.0",
                     "label": "Revenue == TRUE"},
            "split": {
                "rule": "test = Month == Dec (reporting only); Feb-Nov: the whole pipeline cross-validated in "
                        f"{CV_FOLDS} label-stratified folds (sklearn StratifiedKFold, shuffle, seed {CV_SEED}); "
                        "tree count and Platt calibration from the folds, final model trained on all Feb-Nov",
                "seed": CV_SEED,
                "rows": {"train": int(len(pool)), "test_dec": int(len(test))},
                "positives": {"train": int(y[pool].sum()), "test_dec": int(y[test].sum())},
            },
            "features_excluded": {"Month": "not computable live / does not generalise",
                                  "Region": "not computable live",
                                  "OperatingSystems, Browser": "no gain in Feb-Nov CV"},
            "params": params,
            "max_trees": MAX_TREES,
            "tree_count": "argmin of the folds' mean validation binary_logloss (one early stopping over five "
                          "held-out slices)",
            "best_iteration": best,
            "cv_logloss_at_best": round(float(curve[best - 1]), 6),
            "model_selection": "features, monotone constraints, num_leaves, min_data_in_leaf, lambda_l2, "
                               "feature/bagging fraction: seeded 5-fold CV on Feb-Nov; pipeline (CV tree count and "
                               "out-of-fold Platt vs 10/10 % slices) and learning rate: nested 5-fold check inside "
                               "Feb-Nov (models/train/README.md); December never used for a choice",
            "calibration": "Platt: logistic regression (no penalty) of the label on the out-of-fold margins "
                           "logit(p) of the CV models over Feb-Nov; p' = sigmoid(a*logit(p) + b)",
            "tiers": "ai_score = 100 * calibrated probability; hot = floor of the 90th percentile of the "
                     "out-of-fold ai_score on Feb-Nov (hot ~ top decile); warm = twice Feb-Nov's conversion "
                     "rate, in ai_score points",
            "export": {"converter": "onnxmltools.convert_lightgbm(zipmap=False)", "target_opset": TARGET_OPSET,
                       "ops": [f"{d or 'ai.onnx'}:{o}" for d, o in ops],
                       "thresholds": "every nodes_values entry set to the largest float32 <= the LightGBM "
                                     f"double threshold (exact parity for float32 inputs); {changed} of them "
                                     "differ from round-to-nearest",
                       "max_abs_prob_diff_lgb_vs_ort_all_rows": parity},
            "explain": {"node_covers": "LightGBM internal_count / leaf_count (training rows reaching the node),"
                                       " indexed by ONNX nodes_nodeids; LightGBM pred_contrib TreeSHAP uses "
                                       "these counts, not hessian sums",
                        "treeshap_check_max_abs_err": shap_err},
            "versions": {"python": sys.version.split()[0], "lightgbm": lgb.__version__,
                         "onnxmltools": onnxmltools.__version__, "onnxruntime": ort.__version__,
                         "onnx": onnx.__version__, "scikit-learn": sklearn.__version__, "numpy": np.__version__},
            "command": ".venv/bin/python models/train/train.py",
            "date": DATE,
        },
        "metrics": {"holdout": m_test, "cross_validation": m_oof, "train": m_train},
    }
    with open(os.path.join(args.out, "card.json"), "w", newline="\n") as f:
        f.write(card_json(card))

    print(f"trees {best}, Dec AUC {m_test['auc']:.4f} Brier {m_test['brier']:.4f} logloss {m_test['logloss']:.4f}"
          f" | Feb-Nov out-of-fold AUC {m_oof['auc']:.4f} Brier {m_oof['brier']:.4f}"
          f" | platt a={a:.4f} b={b:.4f} | tiers hot {hot} warm {warm} | lgb-ort {parity:.2e}"
          f" | shap err {shap_err} | thresholds moved {changed} | {time.perf_counter() - t0:.1f} s",
          file=sys.stderr)


def card_json(card: dict) -> str:
    """Indented JSON with the long numeric arrays (node covers) kept on one line per tree."""
    covers = card["explain"]["node_covers"]
    card = dict(card, explain={"node_covers": "@COVERS@"})
    text = json.dumps(card, indent=2)
    inner = ",\n".join("      " + json.dumps(c, separators=(",", ":")) for c in covers)
    return text.replace('"@COVERS@"', "[\n" + inner + "\n    ]") + "\n"


if __name__ == "__main__":
    main()
