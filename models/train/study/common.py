"""Model-study harness (scratch work kept for reproducibility; models/train/README.md items 5-6).
load() returns Feb-Nov ONLY unless asked: the studies never load December.

    cd models/train/study && ../../../.venv/bin/python cost.py     # ~4 min on 2 cores
"""
import csv, json, numpy as np, lightgbm as lgb
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score, brier_score_loss, log_loss
from sklearn.model_selection import StratifiedKFold

import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from columns import parts  # the dataset's column rule (A+B), shared with train.py
DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "..", "shared", "data",
                    "online_shoppers", "online_shoppers_intention.csv")
VIS = {"New_Visitor": 0, "Returning_Visitor": 1, "Other": 2}
WK = {"FALSE": 0, "TRUE": 1}
BASE = ["Administrative", "Administrative_Duration", "Informational", "Informational_Duration",
        "ProductRelated", "ProductRelated_Duration", "BounceRates", "ExitRates", "PageValues",
        "SpecialDay", "TrafficType", "VisitorType", "Weekend"]
MONTHS = ["Feb", "Mar", "May", "June", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

def _rows():
    with open(DATA, newline="") as f:
        return list(csv.DictReader(f))

def _col(rows, c):
    if c == "VisitorType": return np.array([VIS[r[c]] for r in rows], dtype=np.float64)
    if c == "Weekend": return np.array([WK[r[c]] for r in rows], dtype=np.float64)
    return np.array([float(r[c]) for r in rows], dtype=np.float64)

def build(rows, cols):
    """cols: list of column names, 'A+B' sums, or 'A/B' ratios (ratio: a/(b) with b==0 -> -1; info only)."""
    out = []
    for c in cols:
        if "/" in c:
            a, b = c.split("/"); va, vb = _col(rows, a), _col(rows, b)
            out.append(np.where(vb > 0, va / np.where(vb > 0, vb, 1), -1.0))
        else:
            out.append(sum(_col(rows, p) for p in parts(c)))
    return np.column_stack(out).astype(np.float32)

def load(cols=BASE, include_dec=False):
    rows = _rows()
    if not include_dec:
        rows = [r for r in rows if r["Month"] != "Dec"]
    X = build(rows, cols)
    y = np.array([r["Revenue"] == "TRUE" for r in rows], dtype=np.int64)
    m = np.array([MONTHS.index(r["Month"]) for r in rows])
    return X, y, m

BASE_PARAMS = {"objective": "binary", "metric": "binary_logloss", "num_leaves": 31, "max_depth": -1,
    "learning_rate": 0.03, "min_data_in_leaf": 100, "lambda_l2": 5.0, "feature_fraction": 0.8,
    "bagging_fraction": 1.0, "bagging_freq": 0, "seed": 7, "feature_fraction_seed": 3, "bagging_seed": 5,
    "data_random_seed": 9, "deterministic": True, "force_row_wise": True, "num_threads": 1, "verbose": -1}

def sig(z): return 1 / (1 + np.exp(-z))

def platt(margin, y):
    lr = LogisticRegression(C=np.inf, solver="lbfgs", tol=1e-10, max_iter=1000)
    lr.fit(margin.reshape(-1, 1), y)
    return float(lr.coef_[0][0]), float(lr.intercept_[0])

def mets(y, p):
    return dict(auc=roc_auc_score(y, p), brier=brier_score_loss(y, p), ll=log_loss(y, p, labels=[0, 1]))

def cv_oof(params, X, y, max_trees=400, seed=11, nfold=5, cat=None, w=None, enc=None):
    """5-fold stratified CV; pick #trees = argmin mean fold logloss; return best_it, OOF margins at best_it."""
    skf = StratifiedKFold(nfold, shuffle=True, random_state=seed)
    folds = list(skf.split(X, y))
    curves, boosters = [], []
    Xo = X; oofX = np.array(X)
    for tr, va in folds:
        if enc is not None:
            f = enc(Xo[tr], y[tr]); X = np.array(Xo); X[tr] = f(Xo[tr]); X[va] = f(Xo[va]); oofX[va] = X[va]
        dtr = lgb.Dataset(X[tr], y[tr], weight=None if w is None else w[tr], categorical_feature=cat or "auto", free_raw_data=False)
        dva = lgb.Dataset(X[va], y[va], reference=dtr, categorical_feature=cat or "auto")
        ev = {}
        b = lgb.train(params, dtr, num_boost_round=max_trees, valid_sets=[dva], valid_names=["v"],
                      callbacks=[lgb.record_evaluation(ev)])
        curves.append(ev["v"]["binary_logloss"]); boosters.append(b)
    mean = np.mean(curves, axis=0)
    best = int(np.argmin(mean)) + 1
    oof = np.zeros(len(y))
    for (tr, va), b in zip(folds, boosters):
        oof[va] = b.predict(oofX[va], raw_score=True, num_iteration=best)
    return best, oof, mean

def pipeline(params, X, y, max_trees=400, cat=None, calib=True, w=None, enc=None):
    """Idea (1): #trees by 5-fold CV, train on all rows, Platt on OOF margins. Returns predict fn, info."""
    best, oof, _ = cv_oof(params, X, y, max_trees, cat=cat, w=w, enc=enc)
    a, b = platt(oof, y) if calib else (1.0, 0.0)
    fe = enc(X, y) if enc is not None else (lambda Z: Z)
    X = fe(X)
    bst = lgb.train(params, lgb.Dataset(X, y, weight=w, categorical_feature=cat or "auto"), num_boost_round=best)
    return (lambda Z: sig(a * bst.predict(fe(Z), raw_score=True) + b)), dict(trees=best, a=a, b=b, oof=oof, booster=bst, fe=fe)

CAL = np.array([2, 3, 5, 6, 7, 8, 9, 10, 11, 12])  # calendar month of MONTHS index

def weights(m, halflife):
    """recency weight relative to the last training month; halflife in calendar months (None = uniform)."""
    if halflife is None: return None
    c = CAL[m]; return 0.5 ** ((c.max() - c) / halflife)

def evaluate(params, X, y, m, max_trees=400, cat=None, hl=None, enc=None):
    r = {}
    w = weights(m, hl)
    best, oof, _ = cv_oof(params, X, y, max_trees, cat=cat, w=w, enc=enc)
    a, b = platt(oof, y)   # unweighted Platt on OOF margins
    mr = mets(y, sig(oof)); mc = mets(y, sig(a * oof + b))
    late = m >= 3
    ml = mets(y[late], sig(a * oof[late] + b))
    r.update(cv_trees=best, cv_auc=mr["auc"], cv_brier=mr["brier"], cv_ll=mr["ll"], cv_brier_cal=mc["brier"], cv_ll_cal=mc["ll"],
             late_auc=ml["auc"], late_brier=ml["brier"])
    for name, trm, tem in (("f1", m <= 6, m >= 7), ("f2", m <= 7, m == 8)):
        pred, info = pipeline(params, X[trm], y[trm], max_trees, cat=cat, w=weights(m[trm], hl), enc=enc)
        q = pred(X[tem]); mm = mets(y[tem], q)
        r.update({f"{name}_auc": mm["auc"], f"{name}_brier": mm["brier"], f"{name}_ll": mm["ll"], f"{name}_trees": info["trees"]})
    r["score"] = (r["late_auc"] + r["f2_auc"]) / 2
    return r

def fmt(tag, r):
    return (f"{tag:40s} cv {r['cv_auc']:.4f} {r['cv_brier_cal']:.4f} {r['cv_ll_cal']:.4f} t{r['cv_trees']:3d} | late {r['late_auc']:.4f} {r['late_brier']:.4f} | "
            f"f1 {r['f1_auc']:.4f} {r['f1_brier']:.4f} | f2 {r['f2_auc']:.4f} {r['f2_brier']:.4f} t{r['f2_trees']:3d} | S {r['score']:.4f}")

def rank_encoder(col, prior_n=50.0):
    """Re-code a categorical code column as the rank (1..K) of its smoothed conversion rate on the given
    training rows (servable: it is just a different `codes` map for the `channel` feature). Unseen -> prior."""
    def fit(Xt, yt):
        codes = np.unique(Xt[:, col]); p0 = yt.mean()
        rate = {c: (yt[Xt[:, col] == c].sum() + prior_n * p0) / ((Xt[:, col] == c).sum() + prior_n) for c in codes}
        order = sorted(rate, key=lambda c: (rate[c], c))
        rank = {c: float(i + 1) for i, c in enumerate(order)}
        # unseen codes: position of the prior rate
        unseen = float(np.searchsorted(sorted(rate.values()), p0) + 0.5)
        def f(Z):
            Z = np.array(Z); Z[:, col] = [rank.get(v, unseen) for v in Z[:, col]]; return Z
        f.rank = rank; f.unseen = unseen
        return f
    return fit
