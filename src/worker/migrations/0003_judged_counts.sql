-- An experiment arm's labelled decisions of a judged window, as additive counts (JSON of
-- `monitor::accuracy::Labelled`): the live gate pools them over the windows both arms served in
-- (src/monitor/promote.rs).
ALTER TABLE judged ADD COLUMN labelled TEXT;
