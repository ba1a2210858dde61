#!/usr/bin/env python3
"""Writes the Online Shoppers CSV as a point-in-time training set in `leadscore dataset`'s format, so that
`train.py --dataset` can be run (and tested) on real data before a site has its own decision log:

    subject_kind,subject_id,decision_ts,outcome_ts,label,<the template's features in input order>

Row r → subject `visitor` / `shoppers-<r>`; decision_ts (ms) = 12:00 UTC on the 1st of the row's Month in
2026 plus one minute per earlier row of that month (months in calendar order, rows in file order), so the
latest decisions are December's and then November's; outcome_ts = decision_ts + 30 min for a conversion,
empty otherwise; label = Revenue (0/1). Feature values are read through the template's column/encoding, as
train.py --table reads them, and written as the shortest decimal of their float32.

    .venv/bin/python models/train/shoppers_dataset.py --out target/shoppers_dataset.csv
"""

import argparse
import csv
import datetime as dt
import json
import os
import sys


HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "June", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=os.path.join(REPO, "../shared/data/online_shoppers/online_shoppers_intention.csv"))
    ap.add_argument("--card", default=os.path.join(HERE, "default.card.json"))
    ap.add_argument("--out", required=True)
    ap.add_argument("--rows", type=int, default=0, help="keep every n-th row only (0: all)")
    args = ap.parse_args()
    sys.path.insert(0, HERE)
    import train  # the template reader and column mapping of train.py --table

    tpl = train.load_template(args.card)
    specs = [dict(f) for f in tpl["features"]]
    header, rows, lines = train.read_csv(args.data)
    if args.rows > 1:
        keep = list(range(0, len(rows), args.rows))
        rows, lines = [rows[i] for i in keep], [lines[i] for i in keep]
    X = train.table_matrix(args.data, header, rows, lines, specs)
    month, revenue = header.index("Month"), header.index("Revenue")
    seen = {m: 0 for m in MONTHS}
    with open(args.out, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(train.DATASET_COLUMNS + [s["name"] for s in specs])
        for i, r in enumerate(rows):
            m = MONTHS.index(r[month]) + 1
            t0 = dt.datetime(2026, m, 1, 12, tzinfo=dt.timezone.utc)
            ts = int(t0.timestamp() * 1000) + 60_000 * seen[r[month]]
            seen[r[month]] += 1
            label = train.parse_label(r[revenue], f"{args.data}:{lines[i]}", "Revenue")
            w.writerow(["visitor", f"shoppers-{i}", ts, ts + 1_800_000 if label else "", label]
                       + [train.f32_text(v) for v in X[i]])
    print(f"{len(rows)} rows → {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
