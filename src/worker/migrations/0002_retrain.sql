-- Retrain requests the scheduled run sent (src/worker/monitor.rs, `model.retrain_requested`): when,
-- why, and how far into `outcomes` (by rowid) it had counted new labelled outcomes.
CREATE TABLE IF NOT EXISTS retrain_requests (
  at INTEGER PRIMARY KEY,
  reason TEXT NOT NULL,
  outcomes_rowid INTEGER NOT NULL,
  body TEXT NOT NULL
);
