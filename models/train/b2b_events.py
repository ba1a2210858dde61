#!/usr/bin/env python3
"""Turn a leadforge B2B world (../shared/data/leadforge_b2b/, SOURCE.txt) into the events and outcomes a
site and its CRM would send leadscore, so that a B2B model is built through the product's own loop.

One lead = one subject, its events under one visitor id ``b2b-<lead_id>``:

* lead creation → ``identify`` with ``lead_id`` and the contact's, account's and lead's attributes as traits
  (role_function, seniority, buyer_role, email_domain_type, industry, region, employee_band,
  revenue_band, process_maturity, lead_source), then ``group`` with the lead's ``account_id`` and the
  account's attributes, 1 ms later;
* web sessions → ``page`` and ``page_end`` events: the session's page views on ``/products/…`` first, then
  its pricing views on ``/pricing``, its demo views on ``/demo``, the duration spread evenly;
* touches → ``custom`` events named ``touch_<type>`` (email, call, content_download, webinar,
  linkedin_message) with props ``direction`` and ``channel`` (what a marketing tool sends by lead id);
* sales activities → ``custom`` ``sales_<type>`` (call, email, meeting, demo) with prop ``outcome``;
* opportunities → ``custom`` ``opportunity_created`` (the CRM's stage change, by lead id), and an
  ``opportunity`` outcome;
* conversions → a ``customer`` outcome at the conversion time.

The tables are day-granular: a record dated D happens at a fixed hour of D by kind (identify 08:00, touches
09:00, sessions 11:00, activities 15:00, opportunities 17:00, conversions 18:00) plus a few minutes chosen by
a stable hash of its id, so the same tables give byte-identical output. ``event_times`` (below) is that rule,
imported by the reference features of ``b2b_reference.py`` so that both read the world at the same times.
No engine rule is mirrored here: the Rust engine computes every feature.

    .venv/bin/python models/train/b2b_events.py --data ../shared/data/leadforge_b2b \\
        --events /tmp/b2b/events.ndjson --outcomes /tmp/b2b/outcomes.ndjson
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import json
import os
import sys

HOUR_MS = 3_600_000
MINUTE_MS = 60_000
# The hour of the day each kind of record happens at (the tables give only the day).
HOURS = {"identify": 8, "touch": 9, "session": 11, "activity": 15, "opportunity": 17, "conversion": 18}
TRAITS = {  # trait name → (table, column)
    "role_function": ("contacts", "role_function"),
    "seniority": ("contacts", "seniority"),
    "buyer_role": ("contacts", "buyer_role"),
    "email_domain_type": ("contacts", "email_domain_type"),
    "industry": ("accounts", "industry"),
    "region": ("accounts", "region"),
    "employee_band": ("accounts", "employee_band"),
    "revenue_band": ("accounts", "estimated_revenue_band"),
    "process_maturity": ("accounts", "process_maturity_band"),
    "lead_source": ("leads", "lead_source"),
}


class InputError(Exception):
    """A table that is missing or not as SOURCE.txt describes: a message with the file and line."""


def read(data: str, table: str) -> list[dict]:
    path = os.path.join(data, f"{table}.csv")
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))
    except OSError as e:
        raise InputError(f"{path}: {e}") from None


def day_ms(date: str, where: str) -> int:
    try:
        d = dt.date.fromisoformat(date[:10])
    except ValueError:
        raise InputError(f"{where}: {date!r} is not a YYYY-MM-DD date") from None
    return int(dt.datetime(d.year, d.month, d.day, tzinfo=dt.timezone.utc).timestamp() * 1000)


def minutes(key: str) -> int:
    """0–44 minutes, stable for a record id (no hash randomisation)."""
    return hashlib.sha256(key.encode()).digest()[0] % 45


def event_times(kind: str, date: str, key: str, where: str) -> int:
    """When a record dated `date` of this kind happens (ms): the rule both the events and the reference
    features read."""
    return day_ms(date, where) + HOURS[kind] * HOUR_MS + minutes(key) * MINUTE_MS


def convert(data: str):
    """(events, outcomes): lists of dicts, events sorted by (ts, id)."""
    leads = read(data, "leads")
    contacts = {r["contact_id"]: r for r in read(data, "contacts")}
    accounts = {r["account_id"]: r for r in read(data, "accounts")}
    tables = {"contacts": contacts, "accounts": accounts}
    events: list[dict] = []
    outcomes: list[dict] = []
    known = set()

    def visitor(lead_id: str) -> str:
        return f"b2b-{lead_id}"

    for i, r in enumerate(leads, start=2):
        where = f"{data}/leads.csv:{i}"
        lead = r["lead_id"]
        known.add(lead)
        traits = {}
        for name, (table, col) in TRAITS.items():
            row = r if table == "leads" else tables[table].get(r["contact_id" if table == "contacts" else "account_id"])
            if row is None:
                raise InputError(f"{where}: no {table[:-1]} {r.get(table[:-1] + '_id')!r}")
            if row.get(col):
                traits[name] = row[col]
        ts = event_times("identify", r["lead_created_at"], lead, where)
        events.append({"id": f"{lead}-identify", "type": "identify", "ts": ts, "visitor_id": visitor(lead),
                       "lead_id": lead, "traits": traits})
        # The lead's company: a group a millisecond after the identify (the CRM proves it by bearer).
        firmographics = {k: v for k, v in traits.items() if TRAITS[k][0] == "accounts"}
        events.append({"id": f"{lead}-group", "type": "group", "ts": ts + 1, "visitor_id": visitor(lead),
                       "account_id": r["account_id"], "traits": firmographics})
        if r["converted_within_90_days"] == "True":
            if not r["conversion_timestamp"]:
                raise InputError(f"{where}: converted without a conversion_timestamp")
            outcomes.append({"id": f"{lead}-customer", "lead_id": lead, "type": "customer",
                             "ts": event_times("conversion", r["conversion_timestamp"], lead, where)})

    def check_lead(lead: str, where: str):
        if lead not in known:
            raise InputError(f"{where}: lead {lead!r} is not in leads.csv")

    for i, r in enumerate(read(data, "touches"), start=2):
        where = f"{data}/touches.csv:{i}"
        check_lead(r["lead_id"], where)
        props = {"direction": r["touch_direction"], "channel": r["touch_channel"]}
        events.append({"id": r["touch_id"], "type": "custom", "name": f"touch_{r['touch_type']}",
                       "ts": event_times("touch", r["touch_timestamp"], r["touch_id"], where),
                       "visitor_id": visitor(r["lead_id"]), "props": props})
    for i, r in enumerate(read(data, "sales_activities"), start=2):
        where = f"{data}/sales_activities.csv:{i}"
        check_lead(r["lead_id"], where)
        events.append({"id": r["activity_id"], "type": "custom", "name": f"sales_{r['activity_type']}",
                       "ts": event_times("activity", r["activity_timestamp"], r["activity_id"], where),
                       "visitor_id": visitor(r["lead_id"]), "props": {"outcome": r["activity_outcome"]}})
    for i, r in enumerate(read(data, "opportunities"), start=2):
        where = f"{data}/opportunities.csv:{i}"
        check_lead(r["lead_id"], where)
        ts = event_times("opportunity", r["created_at"], r["opportunity_id"], where)
        events.append({"id": r["opportunity_id"], "type": "custom", "name": "opportunity_created", "ts": ts,
                       "visitor_id": visitor(r["lead_id"])})
        outcomes.append({"id": r["opportunity_id"], "lead_id": r["lead_id"], "type": "opportunity", "ts": ts})
    for i, r in enumerate(read(data, "sessions"), start=2):
        where = f"{data}/sessions.csv:{i}"
        check_lead(r["lead_id"], where)
        try:
            n, p, d, secs = (int(r[k]) for k in ("page_views", "pricing_page_views", "demo_page_views",
                                                 "session_duration_seconds"))
        except ValueError:
            raise InputError(f"{where}: page_views, pricing_page_views, demo_page_views and "
                             "session_duration_seconds must be whole numbers") from None
        paths = [f"/products/{j}" for j in range(max(n - p - d, 0))] + ["/pricing"] * p + ["/demo"] * d
        paths = paths or ["/products/0"]
        step = max(secs, 1) * 1000 // len(paths)
        t0 = event_times("session", r["session_timestamp"], r["session_id"], where)
        for j, path in enumerate(paths):
            base = {"visitor_id": visitor(r["lead_id"]), "path": path}
            events.append({"id": f"{r['session_id']}-p{j}", "type": "page", "ts": t0 + j * step, **base})
            events.append({"id": f"{r['session_id']}-e{j}", "type": "page_end", "ts": t0 + (j + 1) * step,
                           "engaged_ms": step, **base})
    events.sort(key=lambda e: (e["ts"], e["id"]))
    outcomes.sort(key=lambda o: (o["ts"], o["id"]))
    return events, outcomes


def write(path: str, rows: list[dict]):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, separators=(",", ":"), sort_keys=True) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="the world's tables (leadforge_b2b/)")
    ap.add_argument("--events", required=True, help="events NDJSON to write")
    ap.add_argument("--outcomes", required=True, help="outcomes NDJSON to write")
    args = ap.parse_args(argv)
    try:
        events, outcomes = convert(args.data)
    except InputError as e:
        print(f"b2b_events: {e}", file=sys.stderr)
        return 2
    write(args.events, events)
    write(args.outcomes, outcomes)
    print(f"b2b_events: {len(events)} events, {len(outcomes)} outcomes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
