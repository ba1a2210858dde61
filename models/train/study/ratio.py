"""Ratio features on top of the shipped config (Feb-Nov only). Rule fixed before running: adopt a set only if
nested AUC >= shipped + 0.0015 and Brier <= shipped + 0.0005."""
import numpy as np
from sklearn.model_selection import StratifiedKFold
from common import *
MPV = [0]*8 + [1] + [0]*4
P = BASE_PARAMS | {"learning_rate": 0.12}
SETS = {
  "shipped": [],
  "+prod s/page": ["ProductRelated_Duration/ProductRelated"],
  "+all s/page": ["ProductRelated_Duration/ProductRelated", "Administrative_Duration/Administrative", "Informational_Duration/Informational"],
  "+pages total, secs total": ["Administrative+Informational+ProductRelated", "Administrative_Duration+Informational_Duration+ProductRelated_Duration"],

}
for name, extra in SETS.items():
    X, y, m = load(BASE + extra) if extra else load()
    mono = MPV + [0]*len(extra)
    Pm = P | {"monotone_constraints": mono}
    oof = np.zeros(len(y)); nt = []
    for tr, te in StratifiedKFold(5, shuffle=True, random_state=101).split(X, y):
        pred, info = pipeline(Pm, X[tr], y[tr], 800); oof[te] = pred(X[te]); nt.append(info["trees"])
    mm = mets(y, oof); ml = mets(y[m >= 3], oof[m >= 3])
    print(f"{name:28s} nested AUC {mm['auc']:.4f} Brier {mm['brier']:.4f} | late {ml['auc']:.4f} | trees {nt}", flush=True)
