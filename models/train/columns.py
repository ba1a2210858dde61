"""The dataset column rule, shared by the Python scripts (train.py, shoppers_dataset.py through it, the
studies): a card feature's `column` names one CSV column or a sum `A+B` of several; its `encoding` maps a
column's text to a number, else a cell is a number; an empty cell is a missing value (never 0).

The engine's side of the contract — the card schema version, the leading columns of `leadscore dataset`'s
CSV, the kinds whose live values are fixed names — is contract.json beside this file, generated from the
Rust sources by `make generate` (tests/generated.rs fails when it is stale): read it, never restate it.
"""

from __future__ import annotations

import json
import math
import os

HERE = os.path.dirname(os.path.abspath(__file__))
_CONTRACT: dict | None = None


def contract() -> dict:
    """contract.json (generated from the Rust sources)."""
    global _CONTRACT
    if _CONTRACT is None:
        with open(os.path.join(HERE, "contract.json"), encoding="utf-8") as f:
            _CONTRACT = json.load(f)
    return _CONTRACT


def parts(column: str) -> list[str]:
    """The CSV columns a feature's `column` sums: "A+B" → ["A", "B"]."""
    return [c.strip() for c in column.split("+")]


def is_empty(cell: str) -> bool:
    """An empty (or blank) cell: a missing value, as CRM exports write an unknown number."""
    return cell.strip() == ""


def number(cell: str) -> float | None:
    """The cell as a finite number, or None."""
    try:
        v = float(cell)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def served_when_absent(spec: dict):
    """What the engine feeds the model for this feature when its input never arrived live (see
    models/README.md, feature kinds): a `trait` never sent is its `params.default` (NaN, the trees'
    missing branch, when none is given); every other kind is computed from the visitor's events and is
    never absent. Returns the number, "missing" or None (never absent)."""
    if spec.get("kind") != "trait":
        return None
    d = spec.get("params", {}).get("default")
    return "missing" if d is None else float(d)
