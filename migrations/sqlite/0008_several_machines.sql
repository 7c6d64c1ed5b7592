-- Several crawlers on one database. A host name does not tell machines apart (two containers
-- may share one), so each run also records the kernel boot and PID namespace it runs in: a run
-- with the same `host_id` whose process is gone is known dead at once.
ALTER TABLE runs ADD COLUMN host_id TEXT;

-- The daily budget and the quota stop are shared by the crawlers of one key: a crawler reserves
-- units of its key's day here before it sends (`reserved` never passes --daily-budget) and gives
-- back what it did not use; a quota stop met with the key stops the key's other crawlers. Keys
-- are told apart by a fingerprint (`key_id`, 16 hex digits of a hash), never the key itself.
CREATE TABLE key_days (
    key_id       TEXT    NOT NULL,
    day          TEXT    NOT NULL,           -- YYYY-MM-DD, Pacific
    reserved     INTEGER NOT NULL DEFAULT 0,
    exhausted_at INTEGER,                    -- when Google said the key's quota was spent
    PRIMARY KEY (key_id, day)
);
