#!/usr/bin/env python3
"""Train a leadscore model bundle (model.onnx, card.json, golden.json, parity_probs.csv) from a CSV and a card
template, and gate it with `leadscore check`.

Two inputs (models/train/README.md has every flag):

    train.py --dataset FILE.csv --card TEMPLATE.json --name NAME [--out DIR]
        a point-in-time training set as `leadscore dataset` writes it: subject_kind, subject_id,
        decision_ts (ms), outcome_ts, label (0/1), then the card's features in input order; held out:
        the latest --holdout share by decision_ts (card: training.holdout_from, ms).
    train.py --table FILE.csv --label COLUMN --card TEMPLATE.json --name NAME [--split ...]
        cold start: any CSV; the template maps columns to features (`column`, `encoding`, or
        "encoding": "auto", learned from the data and written into the card).

The template is a card's `features` (+ `site`, and settings: calibration, tiers, train params); the
trainer fills in the rest. On the rows that are not held out the whole pipeline is cross-validated
(seeded, label-stratified folds, grouped by subject when subjects repeat): the tree count is where the
folds' mean validation logloss is lowest, the model is trained on all of them with that count, and the
calibration (Platt or isotonic) is fitted on the out-of-fold predictions. The held-out slice is only
reported (and, with --hot-share/--warm-share, sets the tier thresholds by sales capacity).

Deterministic: fixed seeds, deterministic LightGBM/XGBoost, no wall clock (the date comes from the
template, --date or the data); the same inputs give byte-identical files. The default model is one
configuration (`make train`): models/train/default.card.json on the Online Shoppers CSV.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import json
import math
import os
import shlex
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import columns  # noqa: E402  the column rule and the engine's contract (contract.json, generated)

REPO = os.path.dirname(os.path.dirname(HERE))
DATASET_COLUMNS = columns.contract()["dataset_leading_columns"]
CARD_SCHEMA_VERSION = columns.contract()["card_schema_version"]
SPLIT_SEED = 20261123  # golden-row sample and the random split
TRAIN_SEED = 7
CV_FOLDS = 5
CV_SEED = 11
MAX_TREES = 800
TARGET_OPSET = 15
GOLDEN_ROWS = 300
# Positive fit rows a segment needs for tiers of its own (else the global ones).
MIN_SEGMENT_POSITIVES = 120
ISOTONIC_DIGITS = 15  # breakpoints are written with 15 significant digits: serde_json reads them exactly

# LightGBM: chosen on Feb-Nov of the default data only: seeded 5-fold CV (AUC; logloss as tie-break),
# learning rate by the nested check's pre-declared cost rule (the fewest nodes within noise of the best).
LGB_PARAMS = {
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
# XGBoost: the same shape (depth-limited instead of leaf-limited; min_child_weight is a hessian sum,
# ~ rows · p(1 - p)); not tuned.
XGB_PARAMS = {
    "objective": "binary:logistic",
    "eval_metric": "logloss",
    "tree_method": "hist",
    "max_depth": 5,
    "eta": 0.12,
    "min_child_weight": 5.0,
    "lambda": 5.0,
    "colsample_bytree": 0.8,
    "subsample": 1.0,
    "seed": TRAIN_SEED,
    "nthread": 2,
    "verbosity": 0,
}


class InputError(Exception):
    """Bad input (CSV, template, flags): printed as one line, exit code 2, no traceback."""


# ---- reading the template and the CSV ----------------------------------------------------------------

def load_template(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            t = json.load(f)
    except OSError as e:
        raise InputError(f"{path}: {e.strerror}")
    except json.JSONDecodeError as e:
        raise InputError(f"{path}:{e.lineno}: not JSON: {e.msg}")
    if not isinstance(t, dict) or not isinstance(t.get("features"), list) or not t["features"]:
        raise InputError(f"{path}: a card template is an object with a non-empty \"features\" list")
    base = os.path.dirname(os.path.abspath(path))

    def resolve(v):  # "@FILE#KEY" → FILE's KEY (FILE beside the template)
        if isinstance(v, str) and v.startswith("@") and "#" in v:
            file, key = v[1:].split("#", 1)
            try:
                with open(os.path.join(base, file), encoding="utf-8") as f:
                    return json.load(f)[key]
            except (OSError, json.JSONDecodeError, KeyError) as e:
                raise InputError(f"{path}: cannot resolve {v!r}: {e}")
        if isinstance(v, dict):
            return {k: resolve(x) for k, x in v.items()}
        if isinstance(v, list):
            return [resolve(x) for x in v]
        return v

    t = resolve(t)
    names = set()
    for i, f in enumerate(t["features"]):
        if not isinstance(f, dict) or not isinstance(f.get("name"), str) or not isinstance(f.get("kind"), str):
            raise InputError(f"{path}: features[{i}] needs a \"name\" and a \"kind\"")
        if f["name"] in names:
            raise InputError(f"{path}: feature {f['name']!r} is listed twice")
        names.add(f["name"])
        if f.get("values") == "@codes":  # display names of the kind's codes
            codes = f.get("params", {}).get("codes")
            if not isinstance(codes, dict):
                raise InputError(f"{path}: feature {f['name']!r}: \"values\": \"@codes\" needs params.codes")
            shown = t.get("display_names", {})
            by_code: dict = {}
            for live, code in codes.items():
                by_code.setdefault(code_key(code), []).append(shown.get(live, live.replace("_", " ").capitalize()))
            f["values"] = {k: " / ".join(v) for k, v in by_code.items()}
    return t


def f32_text(v) -> str:
    """The shortest decimal of a float32, as Rust prints it ("8", "0.5", "47.3"): the `values` key of a
    feature value and the dataset's cell text."""
    s = str(np.float32(v))
    return s[:-2] if s.endswith(".0") else s


code_key = f32_text


def read_csv(path: str) -> tuple[list[str], list[list[str]], list[int]]:
    """Header, rows and each row's line number (where the record ends)."""
    try:
        f = open(path, newline="", encoding="utf-8")
    except OSError as e:
        raise InputError(f"{path}: {e.strerror}")
    rows, lines = [], []
    with f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            raise InputError(f"{path}: empty file")
        except csv.Error as e:
            raise InputError(f"{path}:1: {e}")
        try:
            for row in reader:
                if not row:
                    continue
                if len(row) != len(header):
                    raise InputError(f"{path}:{reader.line_num}: {len(row)} cells, the header has {len(header)}")
                rows.append(row)
                lines.append(reader.line_num)
        except csv.Error as e:
            raise InputError(f"{path}:{reader.line_num}: {e}")
        except UnicodeDecodeError as e:
            raise InputError(f"{path}: not UTF-8 ({e.reason} at byte {e.start})")
    if not rows:
        raise InputError(f"{path}: no data rows")
    twice = sorted({h for h in header if header.count(h) > 1})
    if twice:
        raise InputError(f'{path}:1: column "{twice[0]}" appears more than once in the header')
    return header, rows, lines


LABELS = {"1": 1, "0": 0, "true": 1, "false": 0, "yes": 1, "no": 0}


def parse_label(cell: str, where: str, col: str) -> int:
    v = LABELS.get(cell.strip().lower())
    if v is None:
        raise InputError(f'{where}: column "{col}": "{cell}" is not 0/1, true/false or yes/no')
    return v


def parse_number(cell: str, where: str, col: str) -> float:
    v = columns.number(cell)
    if v is None:
        raise InputError(f'{where}: column "{col}": "{cell}" is not a number')
    return v


def parse_dataset_cell(cell: str, where: str, col: str) -> float:
    """A `leadscore dataset` feature cell: a number, or missing (empty, or NaN: a trait never sent that has
    no default) as NaN, which is what the engine served."""
    if columns.is_empty(cell) or cell.strip().lower() == "nan":
        return math.nan
    return parse_number(cell, where, col)


def auto_encoding(values: list[str]) -> dict | None:
    """None when every cell is a number; false/true (no/yes) → 0/1; else sorted distinct values → 0..n-1.
    Empty cells are missing values, not a category."""
    distinct = sorted({v for v in values if not columns.is_empty(v)})
    try:
        if all(math.isfinite(float(v)) for v in distinct):
            return None
    except ValueError:
        pass
    lower = {v.strip().lower() for v in distinct}
    for f, t in (("false", "true"), ("no", "yes")):
        if lower <= {f, t}:
            return {v: (1 if v.strip().lower() == t else 0) for v in distinct}
    return {v: i for i, v in enumerate(distinct)}


def refuse_auto_on_fixed_names(spec: dict, values: list[str]) -> None:
    """`encoding: auto` numbers a CSV's labels in sorted order; a kind whose live values are the engine's
    fixed names (channel, os, …) is numbered by params.codes instead, so the two would never agree."""
    names = columns.contract()["fixed_name_kinds"].get(spec["kind"])
    if names is None:
        return
    codes = spec.get("params", {}).get("codes", {})
    seen = sorted({v for v in values if not columns.is_empty(v)})
    example = ", ".join(f'"{v}": <code of the live name it means>' for v in seen[:3])
    raise InputError(
        f"feature {spec['name']!r} (kind {spec['kind']}): \"encoding\": \"auto\" would number the CSV's values "
        f"({', '.join(seen[:8])}{', …' if len(seen) > 8 else ''}) in sorted order, but live the engine numbers "
        f"{spec['kind']} by params.codes over its fixed names ({', '.join(names[:8])}{', …' if len(names) > 8 else ''}"
        f"{'; codes given: ' + ', '.join(f'{k} {v}' for k, v in list(codes.items())[:8]) if codes else ''}). "
        f"Fix: replace \"auto\" with an explicit \"encoding\" that maps each CSV value to the code of the live "
        f"name it means, e.g. {{{example}}}")


def table_matrix(path, header, rows, lines, specs, missing: list | None = None) -> np.ndarray:
    """float32 features of a table (sums of columns in f64, then float32), with auto encodings filled in.
    An empty cell is a missing value: NaN (LightGBM and XGBoost learn a branch for it), or the value the
    engine serves when the input is absent live (a trait's params.default), so training and serving agree;
    `missing` (if given) receives one record per feature with empty cells, for the card."""
    idx = {h: i for i, h in enumerate(header)}
    X = np.zeros((len(rows), len(specs)), dtype=np.float32)
    for j, spec in enumerate(specs):
        if not isinstance(spec.get("column"), str):
            raise InputError(f"feature {spec['name']!r} has no \"column\" (the table path reads every feature from one)")
        cols = columns.parts(spec["column"])
        for c in cols:
            if c not in idx:
                raise InputError(f'{path}:1: no column "{c}" (feature {spec["name"]!r})')
        if spec.get("encoding") == "auto":
            if len(cols) > 1:
                raise InputError(f"feature {spec['name']!r}: \"encoding\": \"auto\" needs a single column")
            refuse_auto_on_fixed_names(spec, [r[idx[cols[0]]] for r in rows])
            enc = auto_encoding([r[idx[cols[0]]] for r in rows])
            if enc is None:
                del spec["encoding"]
            else:
                spec["encoding"] = enc
                if "codes" in spec.get("params", {}):
                    print(f"train.py: feature {spec['name']!r}: encoding learned from column \"{cols[0]}\" "
                          f"({', '.join(f'{k} {v}' for k, v in enc.items())}); the engine's params.codes must give "
                          "the same live values the same numbers", file=sys.stderr)
        enc = spec.get("encoding")
        if enc is not None and not isinstance(enc, dict):
            raise InputError(f"feature {spec['name']!r}: \"encoding\" is an object (value → number) or \"auto\"")
        total = np.zeros(len(rows))
        for c in cols:
            k = idx[c]
            empty = np.array([columns.is_empty(r[k]) and not (enc is not None and r[k] in enc) for r in rows])
            if enc is not None:
                vals = []
                for r, line, e in zip(rows, lines, empty):
                    if e:
                        vals.append(math.nan)
                        continue
                    if r[k] not in enc:
                        known = ", ".join(map(str, list(enc)[:8]))
                        raise InputError(f'{path}:{line}: column "{c}": "{r[k]}" is not in the encoding of '
                                         f'{spec["name"]!r} ({known})')
                    vals.append(enc[r[k]])
                total += np.array(vals, dtype=np.float64)
            else:
                total += np.array([math.nan if e else parse_number(r[k], f"{path}:{line}", c)
                                   for r, line, e in zip(rows, lines, empty)], dtype=np.float64)
        absent = np.isnan(total)
        if absent.any():
            served = columns.served_when_absent(spec)
            if isinstance(served, float):
                total[absent] = served
            if served is None:
                print(f"train.py: feature {spec['name']!r}: {int(absent.sum())} empty cells in {spec['column']!r} "
                      f"trained as missing; live the engine always computes {spec['kind']} from the visitor's "
                      "events, so no live visitor takes the missing branch", file=sys.stderr)
            if missing is not None:
                missing.append({"feature": spec["name"], "column": spec["column"], "empty_cells": int(absent.sum()),
                                "trained_as": "missing" if not isinstance(served, float) else served,
                                "served_when_absent": served if served is not None else
                                "never absent (computed from the visitor's events)"})
        X[:, j] = total.astype(np.float32)
    return X


def parse_time(cell: str, where: str, col: str) -> float:
    """A number (e.g. ms since the epoch) or an ISO date/time (→ ms, UTC when no offset is given)."""
    try:
        v = float(cell)
        if math.isfinite(v):
            return v
    except ValueError:
        pass
    try:
        t = dt.datetime.fromisoformat(cell.strip())
    except ValueError:
        raise InputError(f'{where}: column "{col}": "{cell}" is neither a number nor an ISO date')
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return t.timestamp() * 1000.0


def time_split(t: np.ndarray, share: float):
    """The latest `share` of rows by t: every row at or after the first held-out time (ties stay together)."""
    order = np.argsort(t, kind="stable")
    n_fit = len(t) - int(round(share * len(t)))
    if n_fit <= 0 or n_fit >= len(t):
        raise InputError(f"--holdout {share} leaves no rows on one side of the split")
    t0 = t[order[n_fit]]
    test = t >= t0
    return np.flatnonzero(~test), np.flatnonzero(test), t0


# ---- libraries ---------------------------------------------------------------------------------------

def floor32(t: float) -> np.float32:
    """Largest float32 <= t: for float32 x, `x <= t` iff `x <= floor32(t)` (exact LightGBM parity)."""
    f = np.float32(t)
    if float(f) > t:
        f = np.nextafter(f, np.float32(-np.inf))
    return f


def tree_nodes(onnx_model):
    import onnx
    node = [n for n in onnx_model.graph.node if n.op_type == "TreeEnsembleClassifier"]
    assert len(node) == 1, "expected one TreeEnsembleClassifier"
    attr = {a.name: a for a in node[0].attribute}
    g = lambda k: list(onnx.helper.get_attribute_value(attr[k])) if k in attr else None  # noqa: E731
    return attr, g


def onnx_trees(onnx_model):
    """Per ONNX tree: (root id, where[(t, n)] → attribute index) and the attribute lists."""
    attr, g = tree_nodes(onnx_model)
    a = {k: g(k) for k in ("nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_values",
                           "nodes_truenodeids", "nodes_falsenodeids", "nodes_missing_value_tracks_true")}
    a["nodes_modes"] = [m.decode() if isinstance(m, bytes) else m for m in g("nodes_modes")]
    where = {(t, n): i for i, (t, n) in enumerate(zip(a["nodes_treeids"], a["nodes_nodeids"]))}
    roots = {}
    for t in sorted(set(a["nodes_treeids"])):
        ids = [n for tt, n in zip(a["nodes_treeids"], a["nodes_nodeids"]) if tt == t]
        kids = set()
        for n in ids:
            i = where[(t, n)]
            if a["nodes_modes"][i] != "LEAF":
                kids |= {a["nodes_truenodeids"][i], a["nodes_falsenodeids"][i]}
        r = [n for n in ids if n not in kids]
        assert len(r) == 1
        roots[t] = (r[0], len(ids))
    return attr, a, where, roots


class LightGBM:
    name = "lightgbm"
    defaults = LGB_PARAMS
    cover_name = "count"

    def __init__(self):
        import lightgbm
        self.lgb = lightgbm

    def params(self, base: dict, monotone: list[int]) -> dict:
        return dict(base, monotone_constraints=monotone)

    def cv_runs(self, params, X, y, folds, max_trees, w=None):
        runs = []
        for tr, va in folds:
            dtr = self.lgb.Dataset(X[tr], y[tr], weight=None if w is None else w[tr], free_raw_data=False)
            dva = self.lgb.Dataset(X[va], y[va], weight=None if w is None else w[va], reference=dtr)
            ev: dict = {}
            b = self.lgb.train(params, dtr, num_boost_round=max_trees, valid_sets=[dva], valid_names=["v"],
                               callbacks=[self.lgb.record_evaluation(ev)])
            runs.append((va, b, ev["v"]["binary_logloss"]))
        return runs

    def margin(self, b, X, n=None):
        return b.predict(X, raw_score=True, num_iteration=n)

    def prob(self, b, X):
        return b.predict(X)

    def contrib(self, b, X):
        return b.predict(X, pred_contrib=True)

    def train(self, params, X, y, n, names, w=None):
        b = self.lgb.train(params, self.lgb.Dataset(X, y, weight=w, feature_name=names), num_boost_round=n)
        assert b.num_trees() == n
        return b

    def to_onnx(self, b, n_features, model_name):
        import onnxmltools
        from onnxmltools.convert.common.data_types import FloatTensorType
        return onnxmltools.convert_lightgbm(
            b, name=model_name, initial_types=[("input", FloatTensorType([None, n_features]))],
            zipmap=False, target_opset=TARGET_OPSET)

    def map_trees(self, onnx_model, b):
        """Walks each ONNX tree and the LightGBM dump tree in parallel from the root.

        Returns per tree, per ONNX node id, the row count cover; sets every ONNX threshold to floor32 of
        the LightGBM double threshold. Asserts features, modes and thresholds agree."""
        import onnx
        attr, a, where, roots = onnx_trees(onnx_model)
        vals, feats, modes = a["nodes_values"], a["nodes_featureids"], a["nodes_modes"]
        trees = b.dump_model()["tree_info"]
        assert len(roots) == len(trees)
        counts, changed = [], 0
        for t, info in enumerate(trees):
            root, n_ids = roots[t]
            cnt = [0] * n_ids
            stack = [(root, info["tree_structure"])]
            seen = 0
            while stack:
                nid, lg = stack.pop()
                i = where[(t, nid)]
                seen += 1
                if nid >= len(cnt):
                    cnt.extend([0] * (nid + 1 - len(cnt)))
                if "split_index" in lg:
                    assert modes[i] == "BRANCH_LEQ" and lg["decision_type"] == "<=", (t, nid, modes[i])
                    assert feats[i] == lg["split_feature"], (t, nid)
                    thr = float(lg["threshold"])
                    assert np.float32(vals[i]) == np.float32(thr), (t, nid, vals[i], thr)
                    f = floor32(thr)
                    if f != np.float32(vals[i]):
                        changed += 1
                    vals[i] = float(f)
                    cnt[nid] = int(lg["internal_count"])
                    stack.append((a["nodes_truenodeids"][i], lg["left_child"]))
                    stack.append((a["nodes_falsenodeids"][i], lg["right_child"]))
                else:
                    assert modes[i] == "LEAF", (t, nid)
                    cnt[nid] = int(lg["leaf_count"])
            assert seen == n_ids, (t, seen, n_ids)
            counts.append(cnt)
        attr["nodes_values"].CopyFrom(onnx.helper.make_attribute("nodes_values", vals))
        return counts, {
            "converter": "onnxmltools.convert_lightgbm(zipmap=False)",
            "thresholds": "every nodes_values entry set to the largest float32 <= the LightGBM double threshold "
                          f"(exact parity for float32 inputs); {changed} of them differ from round-to-nearest",
        }

    def shap_trees(self, b):
        """Per tree: arrays for the Python TreeSHAP check, with both candidate covers; split `x <= t`."""
        out = []
        for tree in b.dump_model()["tree_info"]:
            left, right, feat, thr, val, cnt, hes, miss = [], [], [], [], [], [], [], []

            def add(n):
                k = len(left)
                for arr in (left, right, feat, thr, val, cnt, hes, miss):
                    arr.append(None)
                if "split_index" in n:
                    feat[k], thr[k] = n["split_feature"], float(n["threshold"])
                    # where a missing input goes: the learnt side, or as 0 where NaN was not missing in training
                    miss[k] = n["default_left"] if n.get("missing_type") != "None" else 0.0 <= thr[k]
                    cnt[k], hes[k], val[k] = n["internal_count"], n["internal_weight"], n["internal_value"]
                    left[k] = add(n["left_child"])
                    right[k] = add(n["right_child"])
                else:
                    left[k] = right[k] = -1
                    cnt[k], hes[k], val[k] = n["leaf_count"], n["leaf_weight"], n["leaf_value"]
                return k

            add(tree["tree_structure"])
            out.append({"left": left, "right": right, "feat": feat, "thr": thr, "val": val, "miss": miss,
                        "covers": {"count": cnt, "hessian": hes}})
        return out, 0.0, False

    def versions(self):
        return {"lightgbm": self.lgb.__version__}

    def notes(self):
        return {
            "tree_count": "argmin of the folds' mean validation binary_logloss (one early stopping over five "
                          "held-out slices)",
            "node_covers": "LightGBM internal_count / leaf_count (training rows reaching the node), indexed by "
                           "ONNX nodes_nodeids; LightGBM pred_contrib TreeSHAP uses these counts, not hessian sums",
        }


class XGBoost:
    name = "xgboost"
    defaults = XGB_PARAMS
    cover_name = "hessian"

    def __init__(self):
        try:
            import xgboost
        except ImportError:
            raise InputError("--library xgboost: the xgboost package is not installed (sh models/train/setup.sh)")
        self.xgb = xgboost

    def params(self, base: dict, monotone: list[int]) -> dict:
        return dict(base, monotone_constraints="(" + ",".join(str(m) for m in monotone) + ")")

    def cv_runs(self, params, X, y, folds, max_trees, w=None):
        runs = []
        for tr, va in folds:
            dtr = self.xgb.DMatrix(X[tr], y[tr], weight=None if w is None else w[tr])
            dva = self.xgb.DMatrix(X[va], y[va], weight=None if w is None else w[va])
            ev: dict = {}
            b = self.xgb.train(params, dtr, num_boost_round=max_trees, evals=[(dva, "v")], evals_result=ev,
                               verbose_eval=False)
            runs.append((va, b, ev["v"]["logloss"]))
        return runs

    def margin(self, b, X, n=None):
        rng = (0, n) if n else (0, 0)
        return b.predict(self.xgb.DMatrix(X), output_margin=True, iteration_range=rng).astype(np.float64)

    def prob(self, b, X):
        return b.predict(self.xgb.DMatrix(X)).astype(np.float64)

    def contrib(self, b, X):
        return b.predict(self.xgb.DMatrix(X), pred_contribs=True).astype(np.float64)

    def train(self, params, X, y, n, names, w=None):
        # no feature names: onnxmltools maps XGBoost's f0, f1, … to input columns
        b = self.xgb.train(params, self.xgb.DMatrix(X, y, weight=w), num_boost_round=n)
        assert b.num_boosted_rounds() == n
        return b

    def to_onnx(self, b, n_features, model_name):
        import onnxmltools
        from onnxmltools.convert.common.data_types import FloatTensorType
        return onnxmltools.convert_xgboost(
            b, name=model_name, initial_types=[("input", FloatTensorType([None, n_features]))],
            target_opset=TARGET_OPSET)

    def _trees(self, b):
        raw = json.loads(b.save_raw("json"))
        return raw["learner"]["gradient_booster"]["model"]["trees"]

    def base_margin(self, b) -> float:
        cfg = json.loads(b.save_config())
        p = float(cfg["learner"]["learner_model_param"]["base_score"].strip("[]"))
        return math.log(p / (1 - p))

    def map_trees(self, onnx_model, b):
        """Walks each ONNX tree and XGBoost's own tree arrays in parallel from the root (true child = left
        = `x < t`). Returns per tree, per ONNX node id, XGBoost's `sum_hessian`: the cover its TreeSHAP
        (pred_contribs) weights children by. Asserts features, modes, thresholds, missing-value directions
        and leaf values agree (thresholds are float32 in XGBoost: nothing to adjust)."""
        attr, a, where, roots = onnx_trees(onnx_model)
        _, g = tree_nodes(onnx_model)
        leaf_w = {(t, n): w for t, n, w in zip(g("class_treeids"), g("class_nodeids"), g("class_weights"))}
        miss = a["nodes_missing_value_tracks_true"] or [0] * len(a["nodes_modes"])
        trees = self._trees(b)
        assert len(roots) == len(trees)
        covers = []
        for t, tr in enumerate(trees):
            root, n_ids = roots[t]
            left, right = tr["left_children"], tr["right_children"]
            cov = [0.0] * n_ids
            stack = [(root, 0)]
            seen = 0
            while stack:
                nid, x = stack.pop()
                i = where[(t, nid)]
                seen += 1
                if nid >= len(cov):
                    cov.extend([0.0] * (nid + 1 - len(cov)))
                cov[nid] = float(np.float32(tr["sum_hessian"][x]))
                if left[x] != -1:
                    assert a["nodes_modes"][i] == "BRANCH_LT", (t, nid, a["nodes_modes"][i])
                    assert a["nodes_featureids"][i] == tr["split_indices"][x], (t, nid)
                    assert np.float32(a["nodes_values"][i]) == np.float32(tr["split_conditions"][x]), (t, nid)
                    assert bool(miss[i]) == bool(tr["default_left"][x]), (t, nid)
                    stack.append((a["nodes_truenodeids"][i], left[x]))
                    stack.append((a["nodes_falsenodeids"][i], right[x]))
                else:
                    assert a["nodes_modes"][i] == "LEAF", (t, nid)
                    assert np.float32(leaf_w[(t, nid)]) == np.float32(tr["split_conditions"][x]), (t, nid)
            assert seen == n_ids, (t, seen, n_ids)
            covers.append(cov)
        return covers, {
            "converter": "onnxmltools.convert_xgboost",
            "thresholds": "XGBoost's float32 thresholds as they are (BRANCH_LT: x < t, exact on float32 inputs)",
        }

    def shap_trees(self, b):
        out = []
        for tr in self._trees(b):
            out.append({"left": tr["left_children"], "right": tr["right_children"], "feat": tr["split_indices"],
                        "miss": [bool(v) for v in tr["default_left"]],
                        # float32, as XGBoost compares: the JSON's decimals are not always the float32's
                        "thr": [float(np.float32(v)) for v in tr["split_conditions"]],
                        "val": [float(np.float32(v)) for v in tr["split_conditions"]],
                        "covers": {"hessian": [float(np.float32(v)) for v in tr["sum_hessian"]]}})
        return out, self.base_margin(b), True

    def versions(self):
        return {"xgboost": self.xgb.__version__}

    def notes(self):
        return {
            "tree_count": "argmin of the folds' mean validation logloss (one early stopping over the held-out "
                          "folds)",
            "node_covers": "XGBoost sum_hessian (hessian sums of the training rows reaching the node), indexed by "
                           "ONNX nodes_nodeids; XGBoost's pred_contribs TreeSHAP weights children by these",
        }


# ---- TreeSHAP (Lundberg et al. 2018, Algorithm 2), used only to check which cover the library uses ----

def tree_shap(x, tree, cover, phi, strict):
    left, right, feat, thr, val = tree["left"], tree["right"], tree["feat"], tree["thr"], tree["val"]

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
        if np.isnan(x[feat[j]]):
            goes_left = tree["miss"][j]
        else:
            goes_left = x[feat[j]] < thr[j] if strict else x[feat[j]] <= thr[j]
        hot, cold = (left[j], right[j]) if goes_left else (right[j], left[j])
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


def shap_check(lib, booster, X: np.ndarray, contrib: np.ndarray) -> dict:
    trees, base, strict = lib.shap_trees(booster)
    err = {}
    for name in trees[0]["covers"]:
        worst = 0.0
        for r in range(len(X)):
            phi = np.zeros(X.shape[1] + 1)
            phi[-1] = base
            for tr in trees:
                if len(tr["left"]) == 1:  # a single leaf: only the bias
                    phi[-1] += tr["val"][0]
                    continue
                phi[-1] += tree_shap(X[r].astype(np.float64), tr, tr["covers"][name], phi, strict)
            worst = max(worst, float(np.abs(phi - contrib[r]).max()))
        err[name] = worst
    return err


# ---- pipeline ----------------------------------------------------------------------------------------

def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def cv_folds(y: np.ndarray, groups: np.ndarray | None):
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
    if groups is None:
        return list(StratifiedKFold(CV_FOLDS, shuffle=True, random_state=CV_SEED).split(np.zeros(len(y)), y))
    return list(StratifiedGroupKFold(CV_FOLDS, shuffle=True, random_state=CV_SEED).split(
        np.zeros(len(y)), y, groups))


def cv_tree_count(lib, params, X, y, folds, max_trees, w=None):
    """Whole-pipeline CV: the tree count with the lowest mean validation logloss, the out-of-fold margins at
    that count and the mean curve (rows weighted by w where given)."""
    runs = lib.cv_runs(params, X, y, folds, max_trees, w)
    curve = np.mean([c for _, _, c in runs], axis=0)
    best = int(np.argmin(curve)) + 1
    if best >= max_trees:
        raise InputError(f"the CV logloss is still falling at {max_trees} trees: raise train.max_trees")
    oof = np.zeros(len(y))
    for va, b, _ in runs:
        oof[va] = lib.margin(b, X[va], best)
    return best, oof, curve.tolist()


def fit_platt(margin, y):
    from sklearn.linear_model import LogisticRegression
    cal = LogisticRegression(C=np.inf, solver="lbfgs", tol=1e-10, max_iter=1000)
    cal.fit(margin.reshape(-1, 1), y)
    return float(cal.coef_[0][0]), float(cal.intercept_[0])


def fit_isotonic(p, y):
    """Breakpoints of sklearn's IsotonicRegression on raw probabilities, 15 significant digits."""
    from sklearn.isotonic import IsotonicRegression
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip").fit(p, y)
    r = lambda v: [float(f"{x:.{ISOTONIC_DIGITS}g}") for x in v]  # noqa: E731
    return r(iso.X_thresholds_), r(iso.y_thresholds_)


def apply_cal(cal: dict, margin: np.ndarray) -> np.ndarray:
    if cal["method"] == "platt":
        return sigmoid(cal["a"] * margin + cal["b"])
    if cal["method"] == "isotonic":
        return np.interp(sigmoid(margin), cal["x"], cal["y"])
    return sigmoid(margin)


def calibration_choice(oof, y, folds) -> dict:
    """Cross-fitted calibrators on the out-of-fold margins: for each CV fold, Platt and isotonic fitted on
    the other folds' out-of-fold predictions and scored on it (log loss, clipped at 1e-15)."""
    from sklearn.metrics import log_loss
    pred = {"platt": np.zeros(len(y)), "isotonic": np.zeros(len(y))}
    for tr, va in folds:
        a, b = fit_platt(oof[tr], y[tr])
        pred["platt"][va] = sigmoid(a * oof[va] + b)
        x, yy = fit_isotonic(sigmoid(oof[tr]), y[tr])
        pred["isotonic"][va] = np.interp(sigmoid(oof[va]), x, yy)
    loss = {k: round(float(log_loss(y, np.clip(v, 1e-15, 1 - 1e-15), labels=[0, 1])), 6) for k, v in pred.items()}
    return {"platt_logloss": loss["platt"], "isotonic_logloss": loss["isotonic"],
            "auto_picks": "isotonic" if loss["isotonic"] < loss["platt"] else "platt"}


def metrics(y, p, name: str, extra: dict | None = None) -> dict:
    from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score
    m = {"period": name, "rows": int(len(y)), "positives": int(y.sum()),
         "auc": round(float(roc_auc_score(y, p)), 6) if 0 < y.sum() < len(y) else None,
         "brier": round(float(brier_score_loss(y, p)), 6),
         "logloss": round(float(log_loss(y, np.clip(p, 1e-15, 1 - 1e-15), labels=[0, 1])), 6),
         "mean_prob": round(float(p.mean()), 6), "positive_rate": round(float(y.mean()), 6)}
    if extra:
        m.update(extra)
    return m


def ai_scores(p: np.ndarray) -> np.ndarray:
    """ai_score as the scorer computes it: round(100 p), half away from zero, clamped."""
    return np.clip(np.floor(100 * p + 0.5), 0, 100)


def capacity_tiers(p_test: np.ndarray, hot_share: float, warm_share: float) -> tuple[int, int]:
    """Thresholds whose held-out shares come closest to hot_share and hot_share + warm_share (ties: the
    higher threshold, i.e. the smaller tier)."""
    s = ai_scores(p_test)

    def pick(share, hi):
        cands = range(hi, 0, -1)
        return min(cands, key=lambda t: (abs(float((s >= t).mean()) - share), -t))

    hot = pick(hot_share, 100)
    warm = pick(hot_share + warm_share, hot)
    return hot, warm


def run(args) -> None:
    t0 = time.perf_counter()
    tpl_path = args.card
    tpl = load_template(tpl_path)
    specs = [dict(f) for f in tpl["features"]]
    names = [s["name"] for s in specs]
    tset = tpl.get("train", {})
    split_key = args.split or ("time:decision_ts" if args.dataset else "random")
    named = tpl.get("part_names", {}).get(split_key)  # names of the two parts under this split, if given
    part = dict({"fit": "training rows", "holdout": "holdout"}, **(named or {}))
    tnotes = tpl.get("training", {})
    max_trees = int(tset.get("max_trees", MAX_TREES))
    lib = {"lightgbm": LightGBM, "xgboost": XGBoost}[args.library]()

    groups = None
    subjects = None
    holdout_from = None
    missing: list = []  # features with empty cells: how they were trained, what the engine serves
    if args.dataset:
        data_path = args.dataset
        header, rows, lines = read_csv(data_path)
        want = DATASET_COLUMNS + names
        if header != want:
            k = next((i for i, (h, w) in enumerate(zip(header, want)) if h != w), min(len(header), len(want)))
            got = f'"{header[k]}"' if k < len(header) else "nothing"
            exp = f'"{want[k]}"' if k < len(want) else "nothing"
            raise InputError(f"{data_path}:1: column {k + 1} is {got} but {exp} was expected (the dataset header is "
                             f"{', '.join(DATASET_COLUMNS)} and then the card's features in input order)")
        for s in specs:
            if s.get("encoding") == "auto":
                raise InputError(f"{tpl_path}: feature {s['name']!r}: \"encoding\": \"auto\" is for --table "
                                 "(a dataset's features are the engine's numbers)")
        X = np.zeros((len(rows), len(names)), dtype=np.float32)
        for j, n in enumerate(names):
            c = len(DATASET_COLUMNS) + j
            X[:, j] = np.array([parse_dataset_cell(r[c], f"{data_path}:{line}", n) for r, line in zip(rows, lines)],
                               dtype=np.float64).astype(np.float32)
            absent = int(np.isnan(X[:, j]).sum())
            if absent:
                served = columns.served_when_absent(specs[j])
                missing.append({"feature": n, "empty_cells": absent, "trained_as": "missing",
                                "served_when_absent": served if served is not None else
                                "never absent (computed from the visitor's events)"})
        y = np.array([parse_label(r[4], f"{data_path}:{line}", "label") for r, line in zip(rows, lines)],
                     dtype=np.int64)
        ts = []
        for r, line in zip(rows, lines):
            try:
                ts.append(int(r[2]))
            except ValueError:
                raise InputError(f'{data_path}:{line}: column "decision_ts": "{r[2]}" is not an integer (ms)')
        ts = np.array(ts, dtype=np.int64)
        pool, test, cut = time_split(ts, args.holdout)
        holdout_from = int(cut)
        holdout_rule = f"holdout = decision_ts >= {holdout_from} (the latest {args.holdout:.0%} of decisions)"
        holdout_name = f"latest {args.holdout:.0%} by decision_ts"
        subjects = np.array([r[0] + "\x00" + r[1] for r in rows])
        if len(set(subjects[pool])) < len(pool):
            _, groups = np.unique(subjects[pool], return_inverse=True)
        label_text = "label (dataset)"
    else:
        data_path = args.table
        if not args.label:
            raise InputError("--table needs --label COLUMN")
        header, rows, lines = read_csv(data_path)
        if args.label not in header:
            raise InputError(f'{data_path}:1: no column "{args.label}" (the --label column)')
        li = header.index(args.label)
        y = np.array([parse_label(r[li], f"{data_path}:{line}", args.label) for r, line in zip(rows, lines)],
                     dtype=np.int64)
        X = table_matrix(data_path, header, rows, lines, specs, missing)
        split = args.split or "random"
        if split == "random":
            rs = np.random.RandomState(SPLIT_SEED)
            held = np.zeros(len(rows), dtype=bool)
            held[rs.permutation(len(rows))[:int(round(args.holdout * len(rows)))]] = True
            pool, test = np.flatnonzero(~held), np.flatnonzero(held)
            holdout_rule = f"holdout = a seeded random {args.holdout:.0%} of the rows (seed {SPLIT_SEED})"
            holdout_name = f"random {args.holdout:.0%}"
        elif split.startswith("time:"):
            col = split[5:]
            if col not in header:
                raise InputError(f'{data_path}:1: no column "{col}" (the --split time column)')
            ci = header.index(col)
            tv = np.array([parse_time(r[ci], f"{data_path}:{line}", col) for r, line in zip(rows, lines)])
            pool, test, cut = time_split(tv, args.holdout)
            holdout_from = int(cut) if float(cut).is_integer() else float(cut)
            holdout_rule = f"holdout = {col} >= {holdout_from} (the latest {args.holdout:.0%})"
            holdout_name = f"latest {args.holdout:.0%} by {col}"
        elif split.startswith("holdout:") and "=" in split:
            col, vals = split[8:].split("=", 1)
            if col not in header:
                raise InputError(f'{data_path}:1: no column "{col}" (the --split holdout column)')
            ci, vals = header.index(col), vals.split(",")
            held = np.array([r[ci] in vals for r in rows])
            pool, test = np.flatnonzero(~held), np.flatnonzero(held)
            holdout_rule = f"test = {col} == {' or '.join(vals)}"
            holdout_name = ",".join(vals)
        else:
            raise InputError(f"--split {split!r}: expected time:COLUMN, random or holdout:COLUMN=VALUE[,VALUE]")
        label_text = f"{args.label} is 1, true or yes"
    if len(pool) == 0 or len(test) == 0:
        raise InputError(f"the split leaves {len(pool)} rows to train on and {len(test)} held out")
    for what, idx in (("training rows", pool), ("held-out rows", test)):
        if not 0 < y[idx].sum() < len(idx):
            raise InputError(f"the {what} have only one label value ({int(y[idx].sum())} positives of {len(idx)})")

    # ---- fit
    mono = tset.get("monotone", {})
    for k in mono:
        if k not in names:
            raise InputError(f"{tpl_path}: train.monotone names {k!r}, which is not a feature")
    params = lib.params(dict(lib.defaults, **tset.get("params", {}).get(lib.name, {})),
                        [int(mono.get(n, 0)) for n in names])
    folds = cv_folds(y[pool], groups)
    w = None
    if args.weight_subjects:
        if subjects is None:
            raise InputError("--weight-subjects needs --dataset (its subject columns)")
        # Each subject's rows weigh 1/n together: a long journey (many snapshots) weighs as much as
        # a short one. Metrics and calibration stay per row.
        _, inverse, counts = np.unique(subjects[pool], return_inverse=True, return_counts=True)
        w = 1.0 / counts[inverse]
    best, oof, curve = cv_tree_count(lib, params, X[pool], y[pool], folds, max_trees, w)
    booster = lib.train(params, X[pool], y[pool], best, names, w)
    raw = lib.margin(booster, X)
    p_lib = lib.prob(booster, X)

    choice = calibration_choice(oof, y[pool], folds)
    method = args.calibration or tpl.get("calibration", "auto")
    if method not in ("auto", "platt", "isotonic"):
        raise InputError(f"calibration {method!r}: expected auto, platt or isotonic")
    chosen = choice["auto_picks"] if method == "auto" else method
    platt = fit_platt(oof, y[pool]) if chosen == "platt" else None
    if platt is not None and not platt[0] > 0:
        # The margins do not rank the rows (a model without signal, e.g. trained on shuffled labels): a
        # slope ≤ 0 would turn the ranking upside down, so isotonic (flat where there is no signal).
        print(f"train.py: Platt's slope on the out-of-fold margins is {platt[0]:.4g} (no ranking signal): "
              "isotonic calibration instead", file=sys.stderr)
        choice["platt_slope_not_positive"] = platt[0]
        chosen, platt = "isotonic", None
    if platt is not None:
        a, b = platt
        cal = {"method": "platt", "a": a, "b": b}
        cal_text = ("Platt: logistic regression (no penalty) of the label on the out-of-fold margins logit(p) of "
                    f"the CV models over {part['fit']}; p' = sigmoid(a*logit(p) + b)")
    else:
        bx, by = fit_isotonic(sigmoid(oof), y[pool])
        cal = {"method": "isotonic", "x": bx, "y": by}
        cal_text = ("isotonic: sklearn IsotonicRegression (increasing, y in [0, 1]) of the label on the out-of-fold "
                    f"probabilities p of the CV models over {part['fit']}; breakpoints to {ISOTONIC_DIGITS} "
                    "significant digits; p' = numpy.interp(p, x, y), flat beyond the ends")
    p_cal = apply_cal(cal, raw)
    p_oof = apply_cal(cal, oof)  # each fit row scored by a model that did not see it

    # ---- tiers on ai_score = 100 * calibrated probability
    hot_share = args.hot_share if args.hot_share is not None else tpl.get("tiers", {}).get("hot_share")
    warm_share = args.warm_share if args.warm_share is not None else tpl.get("tiers", {}).get("warm_share")
    if (hot_share is None) != (warm_share is None):
        raise InputError("--hot-share and --warm-share go together")
    if hot_share is not None:
        if not (0 < hot_share and 0 < warm_share and hot_share + warm_share < 1):
            raise InputError("--hot-share and --warm-share must be positive with a sum below 1")
        hot, warm = capacity_tiers(p_cal[test], hot_share, warm_share)
        got = ai_scores(p_cal[test])
        for what, t, want in (("hot", hot, hot_share), ("hot + warm", warm, hot_share + warm_share)):
            share = float((got >= t).mean())
            if abs(share - want) > 0.02:
                print(f"train.py: tiers by capacity: {what} holds {share:.1%} of the held-out rows, not "
                      f"{want:.0%}: scores tie at the threshold (ai_score {t})", file=sys.stderr)
        tiers_text = (f"by sales capacity: hot = the ai_score threshold whose share of the held-out rows "
                      f"({part['holdout']}) is closest to {hot_share:.0%}, warm = the threshold closest to "
                      f"{hot_share + warm_share:.0%} (hot + warm); each tier's held-out rows, positives and rate "
                      "in metrics.holdout.tiers")
    else:
        sc = np.sort(100 * p_oof)[::-1]
        hot = int(math.floor(sc[int(0.10 * len(sc))]))
        warm = int(round(200 * y[pool].mean()))
        tiers_text = (f"ai_score = 100 * calibrated probability; hot = floor of the 90th percentile of the "
                      f"out-of-fold ai_score on {part['fit']} (hot ~ top decile); warm = twice {part['fit']}'s "
                      "conversion rate, in ai_score points")
    hot, warm = max(0, min(100, hot)), max(0, min(100, warm))
    warm = min(warm, hot)

    # ---- per-segment tiers: the same rule within each value of one feature (template
    # tiers.segment) whose fit rows hold at least tiers.min_segment_positives positives
    seg_feature = tpl.get("tiers", {}).get("segment")
    min_seg_pos = tpl.get("tiers", {}).get("min_segment_positives", MIN_SEGMENT_POSITIVES)
    if not isinstance(min_seg_pos, int) or isinstance(min_seg_pos, bool) or min_seg_pos < 1:
        raise InputError(f"tiers.min_segment_positives must be a positive integer, not {min_seg_pos!r}")
    segment_tiers = None
    seg_of = np.zeros(len(y), dtype=int) - 1  # each row's segment (index in the list), -1: global tiers
    if seg_feature is not None:
        if seg_feature not in names:
            raise InputError(f"tiers.segment: the card has no feature {seg_feature!r}")
        j = names.index(seg_feature)
        labels = specs[j].get("values", {})
        segs = []
        for v in sorted({v for v in X[pool, j].tolist() if not math.isnan(v)}):
            in_pool = X[pool, j] == v
            pos = int(y[pool][in_pool].sum())
            if pos < min_seg_pos:
                continue
            if hot_share is not None:
                in_test = X[test, j] == v
                if not in_test.any():
                    continue
                h, w = capacity_tiers(p_cal[test][in_test], hot_share, warm_share)
            else:
                sc = np.sort(100 * p_oof[in_pool])[::-1]
                h = int(math.floor(sc[int(0.10 * len(sc))]))
                w = int(round(200 * y[pool][in_pool].mean()))
            h, w = max(0, min(100, h)), max(0, min(100, w))
            seg_of[X[:, j] == v] = len(segs)
            segs.append({"value": float(np.float32(v)), "label": labels.get(f"{v:g}"), "hot": h, "warm": min(w, h),
                         "rows": int(in_pool.sum()), "positives": pos})
        if segs:
            segment_tiers = {"feature": seg_feature, "min_positives": min_seg_pos,
                             "segments": [{k: x for k, x in g.items() if x is not None} for g in segs]}
        tiers_text += (f"; per segment of {seg_feature} with at least {min_seg_pos} positive {part['fit']} rows, "
                       f"the same rule within the segment (card segment_tiers: {len(segs)} segments), the global "
                       "thresholds elsewhere")
    row_hot = np.array([hot if g < 0 else segs[g]["hot"] for g in seg_of])
    row_warm = np.array([warm if g < 0 else segs[g]["warm"] for g in seg_of])

    def tier_stats(idx, p):
        s = ai_scores(p[idx])
        h, w = row_hot[idx], row_warm[idx]
        out = {}
        for tname, m in (("hot", s >= h), ("warm", (s >= w) & (s < h)), ("cold", s < w)):
            out[tname] = {"share": round(float(m.mean()), 4),
                          "conversion": round(float(y[idx][m].mean()), 4) if m.any() else None,
                          "rows": int(m.sum()), "positives": int(y[idx][m].sum())}
        return out

    # ---- export
    import onnx
    import onnxruntime as ort
    out_dir = args.out or os.path.join(REPO, "models", args.name)
    os.makedirs(out_dir, exist_ok=True)
    onnx_model = lib.to_onnx(booster, len(specs), f"leadscore_{args.name}")
    covers, export_notes = lib.map_trees(onnx_model, booster)
    onnx_model.producer_name, onnx_model.producer_version = "leadscore-train", "1"
    # onnxmltools emits opset_import in hash-dependent order: sort it so the file is byte-stable
    opsets = sorted((o.domain, o.version) for o in onnx_model.opset_import)
    del onnx_model.opset_import[:]
    onnx_model.opset_import.extend(onnx.helper.make_opsetid(d, v) for d, v in opsets)
    onnx.checker.check_model(onnx_model)
    ops = sorted({(n.domain, n.op_type) for n in onnx_model.graph.node})
    model_path = os.path.join(out_dir, "model.onnx")
    with open(model_path, "wb") as f:
        f.write(onnx_model.SerializeToString(deterministic=True))
    model_sha = sha256(model_path)

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(model_path, so, providers=["CPUExecutionProvider"])
    outs = [o.name for o in sess.get_outputs()]
    p_ort = sess.run(None, {"input": X})[outs.index("probabilities")][:, 1].astype(np.float64)
    parity = float(np.abs(p_ort - p_lib).max())
    assert parity < 1e-5, parity

    # TreeSHAP: which cover reproduces the library's own contributions?
    rs = np.random.RandomState(SPLIT_SEED + 1)
    page_views = [j for j, s in enumerate(specs) if s["kind"] == "page_views"]
    no_pages = [i for i in range(len(X)) if X[i, page_views].sum() == 0] if page_views else []
    # at most GOLDEN_ROWS // 3 of them (a B2B set has thousands of rows without a product page)
    if len(no_pages) > GOLDEN_ROWS // 3:
        no_pages = rs.choice(no_pages, GOLDEN_ROWS // 3, replace=False).tolist()
    no_pages = set(no_pages)
    golden_rows = sorted(set(rs.choice(len(X), min(GOLDEN_ROWS, len(X)), replace=False).tolist()) | no_pages)
    # a missing input (NaN) is written as null in golden.json: `leadscore check` replays it as missing
    complete = ~np.isnan(X).any(axis=1)
    contrib = lib.contrib(booster, X[golden_rows])
    shap_err = shap_check(lib, booster, X[golden_rows[:12]], contrib[:12])
    shap_tol = 1e-9 if lib.name == "lightgbm" else 1e-5  # XGBoost's contributions are float32
    assert shap_err[lib.cover_name] < shap_tol, shap_err
    assert np.allclose(contrib.sum(axis=1), raw[golden_rows], atol=1e-9 if lib.name == "lightgbm" else 1e-4)

    # ---- metrics
    from sklearn.metrics import brier_score_loss, roc_auc_score
    m_test = metrics(y[test], p_cal[test], part["holdout"] if named else holdout_name, {
        "auc_uncalibrated": round(float(roc_auc_score(y[test], p_lib[test])), 6),
        "brier_uncalibrated": round(float(brier_score_loss(y[test], p_lib[test])), 6),
        "tiers": tier_stats(test, p_cal)})
    oof_all = np.full(len(y), np.nan)
    oof_all[pool] = p_oof
    m_oof = metrics(y[pool], p_oof, f"{part['fit']} out-of-fold ({CV_FOLDS} folds, the models of the CV)", {
        "brier_uncalibrated": round(float(brier_score_loss(y[pool], sigmoid(oof))), 6),
        "tiers": tier_stats(pool, oof_all)})
    m_train = metrics(y[pool], p_cal[pool], f"{part['fit']}, in sample (the shipped model was trained on it)")

    # ---- golden vectors and parity
    def f32s(v):  # shortest decimal of a float32: exact in any JSON reader; null for a missing input
        return None if np.isnan(v) else float(str(np.float32(v)))

    golden = {"features": names, "rows": [
        {"row": int(r), "x": [f32s(v) for v in X[r]], "lgb_prob": float(p_lib[r]), "ort_prob": float(p_ort[r]),
         "lgb_contrib": [float(c) for c in contrib[k]]} for k, r in enumerate(golden_rows)]}
    with open(os.path.join(out_dir, "golden.json"), "w", newline="\n") as f:
        json.dump(golden, f, separators=(",", ":"))
        f.write("\n")
    with open(os.path.join(out_dir, "parity_probs.csv"), "w", newline="\n") as f:
        f.write("row,lgb_prob,ort_prob\n")
        for r in range(len(X)):
            f.write(f"{r},{float(p_lib[r])!r},{float(p_ort[r])!r}\n")

    date = args.date or tnotes.get("date")
    if date is None and holdout_from is not None and args.dataset:
        date = dt.datetime.fromtimestamp(int(ts.max()) / 1000, dt.timezone.utc).strftime("%Y%m%d")
    if date is None:
        date = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d")
        print(f"train.py: no --date: using today ({date}); the card then depends on the day", file=sys.stderr)
    rel = os.path.relpath(os.path.abspath(data_path), REPO)
    data = {"path": rel, "sha256": sha256(data_path), "rows": len(X)}
    data.update(tnotes.get("data", {}))
    data.setdefault("label", label_text)
    folds_text = (f"{CV_FOLDS} label-stratified folds grouped by subject (sklearn StratifiedGroupKFold, shuffle, "
                  f"seed {CV_SEED})" if groups is not None else
                  f"{CV_FOLDS} label-stratified folds (sklearn StratifiedKFold, shuffle, seed {CV_SEED})")
    notes = lib.notes()
    training = {
        "data": data,
        "split": {
            "rule": f"{holdout_rule} (reporting only); {part['fit']}: the whole pipeline cross-validated in "
                    f"{folds_text}; tree count and {'Platt' if chosen == 'platt' else 'isotonic'} calibration "
                    f"from the folds, final model trained on all {part['fit']}",
            "seed": CV_SEED,
            "rows": {"train": int(len(pool)), "holdout": int(len(test))},
            "positives": {"train": int(y[pool].sum()), "holdout": int(y[test].sum())},
        },
        "holdout_from": holdout_from,
    }
    if w is not None:
        training["weights"] = "each subject's rows weigh 1/n (--weight-subjects)"
    if "features_excluded" in tnotes:
        training["features_excluded"] = tnotes["features_excluded"]
    if missing:
        training["missing"] = missing
    training.update({
        "library": lib.name,
        "params": params,
        "max_trees": max_trees,
        "tree_count": notes["tree_count"],
        "best_iteration": best,
        "cv_logloss_at_best": round(float(curve[best - 1]), 6),
    })
    if "model_selection" in tnotes:
        training["model_selection"] = tnotes["model_selection"]
    training.update({
        "calibration": cal_text,
        "calibration_selection": dict(choice, asked=method, chosen=chosen,
                                      rule="auto = isotonic only if its cross-fitted out-of-fold log loss is "
                                           "lower (each CV fold calibrated by the other folds' out-of-fold "
                                           "predictions)"),
        "tiers": tiers_text,
        "export": {"converter": export_notes["converter"], "target_opset": TARGET_OPSET,
                   "ops": [f"{d or 'ai.onnx'}:{o}" for d, o in ops],
                   "thresholds": export_notes["thresholds"],
                   "max_abs_prob_diff_lgb_vs_ort_all_rows": parity},
        "explain": {"node_covers": notes["node_covers"], "treeshap_check_max_abs_err": shap_err},
        "versions": dict({"python": sys.version.split()[0]}, **lib.versions(), **versions()),
        "command": "models/train/train.py " + shlex.join(recorded_argv(args.argv)),
        "date": date,
    })
    card = {
        "schema_version": CARD_SCHEMA_VERSION,
        "name": args.name,
        "model_version": f"{args.name}-{date}-{model_sha[:8]}",
        "model": {"file": "model.onnx", "sha256": model_sha, "n_features": len(specs), "n_trees": len(covers)},
        "features": specs,
    }
    if "rows" in tpl:
        card["rows"] = tpl["rows"]  # how this card's rows are taken: leadscore dataset's defaults
    if "site" in tpl:
        card["site"] = tpl["site"]
    card.update({
        "calibration": cal,
        "tiers": {"hot": hot, "warm": warm},
        **({"segment_tiers": segment_tiers} if segment_tiers else {}),
        "explain": {"node_covers": covers},
        "training": training,
        "metrics": {"holdout": m_test, "cross_validation": m_oof, "train": m_train},
    })
    with open(os.path.join(out_dir, "card.json"), "w", newline="\n") as f:
        f.write(card_json(card))
    # The monitoring baseline is frozen by the engine itself (bins, shares and served scores are
    # Rust's): leadscore baseline on the bundle just written, then stored in the card.
    segments = tpl.get("monitor", {}).get("segments", [])
    # `leadscore baseline` reads finite numbers only: it is frozen on the rows without a missing value
    b_pool, b_test = pool[complete[pool]], test[complete[test]]
    if len(b_pool) and len(b_test):
        card["baseline"] = freeze_baseline(out_dir, args.leadscore, X, y, b_pool, b_test, names, segments)
        if len(b_pool) < len(pool) or len(b_test) < len(test):
            training["baseline_rows"] = ("the monitoring baseline is frozen on the rows without a missing value "
                                         f"({len(b_pool)} of {len(pool)} training, {len(b_test)} of {len(test)} "
                                         "held out)")
    else:
        print("train.py: every training or held-out row has a missing value: no monitoring baseline "
              "(the bundle cannot be monitored for drift)", file=sys.stderr)
    with open(os.path.join(out_dir, "card.json"), "w", newline="\n") as f:
        f.write(card_json(card))

    print(f"{lib.name}: trees {best}, holdout ({m_test['period']}) AUC {m_test['auc']:.4f} Brier {m_test['brier']:.4f}"
          f" logloss {m_test['logloss']:.4f} | {part['fit']} out-of-fold AUC {m_oof['auc']:.4f} Brier {m_oof['brier']:.4f}"
          f" | calibration {chosen} (asked {method}; cross-fitted logloss platt {choice['platt_logloss']}"
          f" isotonic {choice['isotonic_logloss']}) | tiers hot {hot} warm {warm} | lib-ort {parity:.2e}"
          f" | shap err {shap_err} | {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    check(out_dir, args.leadscore)


def recorded_argv(argv: list[str]) -> list[str]:
    """The command line as the card records it: without --leadscore (which binary checks the bundle does
    not change it), so that the card does not depend on the machine."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--leadscore":
            skip = True
        elif not a.startswith("--leadscore="):
            out.append(a)
    return out


def versions() -> dict:
    import onnx
    import onnxmltools
    import onnxruntime as ort
    import sklearn
    return {"onnxmltools": onnxmltools.__version__, "onnxruntime": ort.__version__, "onnx": onnx.__version__,
            "scikit-learn": sklearn.__version__, "numpy": np.__version__}


def leadscore_cmd(binary: str | None) -> list[str]:
    return [binary] if binary else ["cargo", "run", "--quiet", "--release", "--bin", "leadscore", "--"]


def freeze_baseline(out_dir, binary, X, y, pool, test, names, segments) -> dict:
    """`leadscore baseline` on the training (pool) and held-out (test) rows, as float32 text."""
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        paths = {}
        for part, idx in (("train", pool), ("holdout", test)):
            paths[part] = os.path.join(d, part + ".csv")
            with open(paths[part], "w", newline="\n") as f:
                f.write("decision_ts,label," + ",".join(names) + "\n")
                for r in idx:
                    f.write(f"0,{int(y[r])}," + ",".join(f32_text(v) for v in X[r]) + "\n")
        cmd = leadscore_cmd(binary) + ["baseline", "--model", out_dir, "--train", paths["train"],
                                       "--holdout", paths["holdout"]]
        for s in segments:
            cmd += ["--segment", s]
        r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if r.returncode != 0:
        raise InputError(f"leadscore baseline failed: {r.stderr.strip()}")
    return json.loads(r.stdout)


def check(out_dir: str, binary: str | None) -> None:
    """`leadscore check` on the bundle; a failure fails the training run."""
    r = subprocess.run(leadscore_cmd(binary) + ["check", "--model", out_dir], cwd=REPO)
    if r.returncode != 0:
        print(f"train.py: leadscore check failed on {out_dir} (exit {r.returncode})", file=sys.stderr)
        sys.exit(1)


def card_json(card: dict) -> str:
    """Indented JSON with the long numeric arrays (node covers, isotonic breakpoints) on one line each."""
    covers = card["explain"]["node_covers"]
    card = dict(card, explain={"node_covers": "@COVERS@"})
    cal = card["calibration"]
    if cal["method"] == "isotonic":
        card["calibration"] = dict(cal, x="@X@", y="@Y@")
    baseline = card.get("baseline")
    if baseline is not None:
        card["baseline"] = "@BASELINE@"
    text = json.dumps(card, indent=2, ensure_ascii=False)
    inner = ",\n".join("      " + json.dumps(c, separators=(",", ":")) for c in covers)
    text = text.replace('"@COVERS@"', "[\n" + inner + "\n    ]")
    if baseline is not None:  # one line per feature, segment and histogram
        one = lambda v: json.dumps(v, separators=(",", ":"), ensure_ascii=False)
        parts = []
        for k, v in baseline.items():
            if isinstance(v, list) and v and isinstance(v[0], dict):
                v = "[\n" + ",\n".join("      " + one(x) for x in v) + "\n    ]"
            else:
                v = one(v)
            parts.append(f'    "{k}": {v}')
        text = text.replace('"@BASELINE@"', "{\n" + ",\n".join(parts) + "\n  }")
    if cal["method"] == "isotonic":
        text = text.replace('"@X@"', json.dumps(cal["x"])).replace('"@Y@"', json.dumps(cal["y"]))
    return text + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="Flags and the template format: models/train/README.md")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", help="point-in-time training set (leadscore dataset's CSV)")
    src.add_argument("--table", help="any CSV whose columns the template maps to features (cold start)")
    ap.add_argument("--card", required=True, help="card template (features, site, settings)")
    ap.add_argument("--name", required=True, help="bundle name (card name, model_version prefix)")
    ap.add_argument("--out", help="bundle directory (default models/NAME)")
    ap.add_argument("--label", help="--table: the 0/1, true/false or yes/no label column")
    ap.add_argument("--split", help="--table: time:COLUMN, random (default) or holdout:COLUMN=VALUE[,VALUE]")
    ap.add_argument("--holdout", type=float, default=0.2, help="held-out share for time and random splits (0.2)")
    ap.add_argument("--library", choices=["lightgbm", "xgboost"], default="lightgbm")
    ap.add_argument("--weight-subjects", action="store_true",
                    help="--dataset: weigh each subject's rows 1/n (snapshot or per-event decision times)")
    ap.add_argument("--calibration", choices=["auto", "platt", "isotonic"],
                    help="default: the template's \"calibration\", else auto")
    ap.add_argument("--hot-share", type=float, help="tiers by capacity: hot ≈ this share of held-out rows")
    ap.add_argument("--warm-share", type=float, help="tiers by capacity: warm ≈ the next share")
    ap.add_argument("--date", help="YYYYMMDD of model_version (default: template, else the latest decision)")
    ap.add_argument("--leadscore", help="leadscore binary for the check (default: cargo run --release)")
    argv = sys.argv[1:]
    args = ap.parse_args(argv)
    args.argv = argv
    if args.dataset and (args.label or args.split):
        ap.error("--label and --split are for --table (a dataset's label and split are fixed)")
    if not 0 < args.holdout < 1:
        ap.error("--holdout is a share between 0 and 1")
    if args.date and not (len(args.date) == 8 and args.date.isdigit()):
        ap.error("--date is YYYYMMDD")
    try:
        run(args)
    except InputError as e:
        print(f"train.py: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
