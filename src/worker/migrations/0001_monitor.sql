-- The monitor's aggregates (src/worker/monitor.rs). Applied by `wrangler d1 migrations apply
-- leadscore-monitor` (--local for wrangler dev: tests/worker/stack.mjs does it before each start;
-- --remote in production: `make deploy`). A change is a new numbered file, never an edit.

-- Each (window, model, arm, visitor)'s latest score: the unit a window is judged on.
CREATE TABLE IF NOT EXISTS decisions (
  window_start INTEGER NOT NULL,
  model TEXT NOT NULL,
  arm TEXT NOT NULL,
  visitor_id TEXT NOT NULL,
  lead_id TEXT,
  ts INTEGER NOT NULL,
  record TEXT NOT NULL,
  PRIMARY KEY (window_start, model, arm, visitor_id)
);

-- CRM outcomes, by id (a re-sent outcome is an upsert that changes nothing).
CREATE TABLE IF NOT EXISTS outcomes (
  id TEXT PRIMARY KEY,
  visitor_id TEXT,
  lead_id TEXT,
  type TEXT NOT NULL,
  ts INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS outcomes_visitor ON outcomes (visitor_id);
CREATE INDEX IF NOT EXISTS outcomes_lead ON outcomes (lead_id);

-- Which windows the scheduled run has judged (drift once; accuracy once fully labelled).
CREATE TABLE IF NOT EXISTS judged (
  window_start INTEGER NOT NULL,
  model TEXT NOT NULL,
  arm TEXT NOT NULL,
  drift INTEGER NOT NULL DEFAULT 0,
  accuracy INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (window_start, model, arm)
);

-- Alerts sent, once per (window, model, arm, type).
CREATE TABLE IF NOT EXISTS alerts (
  window_start INTEGER NOT NULL,
  model TEXT NOT NULL,
  arm TEXT NOT NULL,
  type TEXT NOT NULL,
  sent_at INTEGER NOT NULL,
  body TEXT NOT NULL,
  PRIMARY KEY (window_start, model, arm, type)
);
