"""Pipeline A (shipped: 80/10/10 random slices, early stop on valid logloss, Platt on calib slice) vs
pipeline B (idea 1: #trees by 5-fold CV on all rows, train on all rows, Platt on OOF margins), evaluated
only inside Feb-Nov: outer random 5-fold (nested) and forward splits."""
import sys, json, numpy as np, lightgbm as lgb
from sklearn.model_selection import StratifiedKFold
from common import *
X, y, m = load()
P = BASE_PARAMS | {"monotone_constraints": [0]*8 + [1] + [0]*4}
if len(sys.argv) > 1 and sys.argv[1] == "adv":
    P = P | {"monotone_constraints_method": "advanced"}

def pipe_A(Xt, yt, seed):
    rs = np.random.RandomState(seed); parts = {"tr": [], "va": [], "ca": []}
    idx_all = np.arange(len(yt))
    for lab in (0, 1):
        idx = idx_all[yt == lab]; idx = idx[rs.permutation(len(idx))]
        nv = nc = round(len(idx) * 0.10)
        parts["va"].append(idx[:nv]); parts["ca"].append(idx[nv:nv+nc]); parts["tr"].append(idx[nv+nc:])
    tr, va, ca = (np.sort(np.concatenate(parts[k])) for k in ("tr", "va", "ca"))
    dtr = lgb.Dataset(Xt[tr], yt[tr], free_raw_data=False)
    b = lgb.train(P, dtr, 300, valid_sets=[lgb.Dataset(Xt[va], yt[va], reference=dtr)],
                  callbacks=[lgb.early_stopping(40, first_metric_only=True, verbose=False)])
    it = b.best_iteration
    a, c = platt(b.predict(Xt[ca], raw_score=True, num_iteration=it), yt[ca])
    return (lambda Z, cal=True: sig((a if cal else 1) * b.predict(Z, raw_score=True, num_iteration=it) + (c if cal else 0))), it

def pipe_B(Xt, yt):
    pred, info = pipeline(P, Xt, yt, 400)
    bst, a, c = info["booster"], info["a"], info["b"]
    return (lambda Z, cal=True: sig((a if cal else 1) * bst.predict(Z, raw_score=True) + (c if cal else 0))), info["trees"]

def run(name, mk):
    out = {}
    # nested: outer 5-fold on Feb-Nov
    for cal in (True, False):
        pass
    oof = {True: np.zeros(len(y)), False: np.zeros(len(y))}; trees = []
    for tr, te in StratifiedKFold(5, shuffle=True, random_state=101).split(X, y):
        f, t = mk(X[tr], y[tr]); trees.append(t)
        for cal in (True, False): oof[cal][te] = f(X[te], cal)
    for cal in (True, False):
        mm = mets(y, oof[cal]); ml = mets(y[m >= 3], oof[cal][m >= 3])
        out[f"nested_cal{int(cal)}"] = dict(mm, late_auc=ml["auc"], late_brier=ml["brier"])
    for fn, trm, tem in (("f1", m <= 6, m >= 7), ("f2", m <= 7, m == 8)):
        f, t = mk(X[trm], y[trm])
        for cal in (True, False): out[f"{fn}_cal{int(cal)}"] = mets(y[tem], f(X[tem], cal))
    print(name, "trees", trees, flush=True)
    for k, v in out.items(): print(f"   {k:14s}", " ".join(f"{a}={b:.4f}" for a, b in v.items()), flush=True)
    return out

res = {}
res["B"] = run("B (CV trees, all data, OOF Platt)", pipe_B)
for s in (20261123, 1, 2):
    res[f"A{s}"] = run(f"A seed {s}", lambda Xt, yt, s=s: pipe_A(Xt, yt, s))
json.dump(res, open("res_pipecmp%s.json" % ("_adv" if len(sys.argv) > 1 else ""), "w"), indent=1)
