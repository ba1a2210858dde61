"""Cost study (2026-12-01, third session), Feb-Nov only (December is never loaded).
Pipeline B (tree count by 5-fold CV on all training rows, train on all, Platt on OOF margins) with the
shipped features/params, varying what sets the forest's size. Pre-declared rule, written before running:
among configs whose nested-check calibrated AUC >= best - 0.0015 and Brier <= best + 0.0005, ship the one
with the fewest nodes (TreeSHAP cost is O(nodes)); ties -> the lower learning rate."""
import sys, json, time, numpy as np, lightgbm as lgb
from sklearn.model_selection import StratifiedKFold
from common import *
X, y, m = load()
MPV = [0]*8 + [1] + [0]*4
CONFIGS = {
    "lr0.03 nl31": {},
    "lr0.05 nl31": {"learning_rate": 0.05},
    "lr0.08 nl31": {"learning_rate": 0.08},
    "lr0.12 nl31": {"learning_rate": 0.12},
    "lr0.05 nl15": {"learning_rate": 0.05, "num_leaves": 15},
    "lr0.08 nl15": {"learning_rate": 0.08, "num_leaves": 15},
}
only = sys.argv[1:] or list(CONFIGS)

def nodes(bst):
    d = bst.dump_model()
    def cnt(t): return 1 if "leaf_value" in t else 1 + cnt(t["left_child"]) + cnt(t["right_child"])
    return sum(cnt(t["tree_structure"]) for t in d["tree_info"])

for name in only:
    t0 = time.time()
    P = BASE_PARAMS | {"monotone_constraints": MPV} | CONFIGS[name]
    oof = np.zeros(len(y)); trees = []
    for tr, te in StratifiedKFold(5, shuffle=True, random_state=101).split(X, y):
        pred, info = pipeline(P, X[tr], y[tr], 800)
        oof[te] = pred(X[te]); trees.append(info["trees"])
    mm = mets(y, oof); ml = mets(y[m >= 3], oof[m >= 3])
    fw = {}
    for fn, trm, tem in (("f1", m <= 6, m >= 7), ("f2", m <= 7, m == 8)):
        pred, info = pipeline(P, X[trm], y[trm], 800)
        fw[fn] = mets(y[tem], pred(X[tem]))
    pred, info = pipeline(P, X, y, 800)
    print(f"{name:14s} nested AUC {mm['auc']:.4f} Brier {mm['brier']:.4f} ll {mm['ll']:.4f} | late {ml['auc']:.4f} {ml['brier']:.4f} "
          f"| f1 {fw['f1']['auc']:.4f} {fw['f1']['brier']:.4f} | f2 {fw['f2']['auc']:.4f} {fw['f2']['brier']:.4f} "
          f"| trees(folds) {trees} | final trees {info['trees']} nodes {nodes(info['booster'])} | {time.time()-t0:.0f}s", flush=True)
