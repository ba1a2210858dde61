"""Which rule rolls lead scores up into an account score? Evidence on the B2B world.

The product's snapshot rows (`leadscore dataset` from models/train/b2b.card.json, `make b2b-example`) give
each lead a row per age; a LightGBM trained on the leads created in the first three quarters of January
scores the rest. For each account with at least one held-out lead and a snapshot age k, the account's rows
at k are rolled up by each candidate rule and judged by AUC against "a lead of the account converts within
the window" (the same label, at account level):

* noisy-or: 1 − Π(1 − p): the probability that at least one member converts, if members were independent;
* max: the hottest member;
* mean: the average member;
* sum: the expected number of converting members (a count, not a probability).

Also a model of its own: a LightGBM on account-level aggregates of the members' features (mean and max of
each, members, trained on the training accounts), to see what a separate account model would add. Prints one
JSON report (AUC per rule, accounts, positive rate); refuses to judge when a side has fewer than 30 accounts
of each label.

    .venv/bin/python models/train/study/b2b_accounts.py --data ../shared/data/leadforge_b2b \\
        --dataset target/b2b/snapshots.csv
"""
import argparse
import json
import os
import sys
from collections import defaultdict

import lightgbm as lgb
import numpy as np
from sklearn.metrics import roc_auc_score

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from b2b_coverage import PARAMS, load_dataset, weights  # same rows, same learner
from b2b_events import event_times, read

MIN_PER_LABEL = 30


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--dataset", required=True)
    args = ap.parse_args(argv)
    names, lead, d, y, X = load_dataset(args.dataset)
    leads = {r["lead_id"]: r for r in read(args.data, "leads")}
    account = np.array([leads[x]["account_id"] for x in lead])
    created = np.array([event_times("identify", leads[x]["lead_created_at"], x, "leads") for x in lead])
    age = np.round((d - created) / 86_400_000).astype(int)
    cut = np.quantile(np.unique(created), 0.75)
    test = created >= cut
    # Accounts are split by their leads: an account with a held-out lead is judged on its held-out leads only.
    b = lgb.train(PARAMS, lgb.Dataset(X[~test], y[~test], weight=weights(lead[~test])), 60)
    p = b.predict(X)
    rules = {
        "noisy_or": lambda ps: 1 - np.prod(1 - ps),
        "max": np.max,
        "mean": np.mean,
        "sum": np.sum,
    }
    report = {"leads_held_out": int(len(set(lead[test]))), "by_age": {}}
    for k in sorted(set(age)):
        rows = defaultdict(list)
        for i in np.where(test & (age == k))[0]:
            rows[account[i]].append(i)
        labels = np.array([int(y[idx].max()) for idx in rows.values()])
        multi = sum(len(idx) > 1 for idx in rows.values())
        entry = {"accounts": len(rows), "with_several_leads": multi,
                 "positive_rate": round(float(labels.mean()), 4) if len(labels) else None}
        if min((labels == 1).sum(), (labels == 0).sum()) < MIN_PER_LABEL:
            entry["verdict"] = f"not judged: fewer than {MIN_PER_LABEL} accounts of a label"
        else:
            for name, f in rules.items():
                score = np.array([f(p[idx]) for idx in rows.values()])
                entry[name] = round(float(roc_auc_score(labels, score)), 4)
        report["by_age"][str(k)] = entry
    # A model of its own on account aggregates, trained on the training accounts at all ages.
    def aggregate(mask):
        groups = defaultdict(list)
        for i in np.where(mask)[0]:
            groups[(account[i], age[i])].append(i)
        feats, labels = [], []
        for idx in groups.values():
            feats.append(np.concatenate([np.nanmean(X[idx], axis=0), np.nanmax(X[idx], axis=0), [len(idx)]]))
            labels.append(int(y[idx].max()))
        return np.array(feats), np.array(labels), list(groups)
    import warnings
    with warnings.catch_warnings():  # a feature missing for every member: NaN, as LightGBM takes it
        warnings.simplefilter("ignore", RuntimeWarning)
        At, yt, _ = aggregate(~test)
        Ah, yh, keys = aggregate(test)
    m = lgb.train(PARAMS, lgb.Dataset(At, yt), 60)
    pa = m.predict(Ah)
    noisy = np.array([1 - np.prod(1 - p[[i for i in np.where(test)[0] if (account[i], age[i]) == key]])
                      for key in keys])
    report["all_ages"] = {"accounts_x_ages": int(len(yh)), "positive_rate": round(float(yh.mean()), 4),
                          "account_model_auc": round(float(roc_auc_score(yh, pa)), 4),
                          "noisy_or_auc": round(float(roc_auc_score(yh, noisy)), 4)}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
