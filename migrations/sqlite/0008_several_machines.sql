-- Several crawlers on one database. A host name does not tell machines apart (two containers
-- may share one), so each run also records the kernel boot and PID namespace it runs in: a run
-- with the same `host_id` whose process is gone is known dead at once.
ALTER TABLE runs ADD COLUMN host_id TEXT;

-- The daily budget is shared: a crawler reserves units of the day here before it sends
-- (`reserved` never passes --daily-budget) and gives back what it did not use.
ALTER TABLE quota_days ADD COLUMN reserved INTEGER NOT NULL DEFAULT 0;
UPDATE quota_days SET reserved = requests;
