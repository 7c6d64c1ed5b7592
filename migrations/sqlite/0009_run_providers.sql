-- Providers are data, not schema. Each run's figures per provider move from columns
-- (google_requests, openlibrary_requests, google_done, batch_size) to rows, so a new provider
-- needs no new column; and `lookups.provider` loses its CHECK (the registry in the code is the
-- list), which SQLite can drop only by rebuilding the table: done once, here.

CREATE TABLE run_providers (
    run_id     INTEGER NOT NULL REFERENCES runs (id),
    provider   TEXT    NOT NULL,
    requests   INTEGER NOT NULL DEFAULT 0,
    done       INTEGER NOT NULL DEFAULT 0,
    not_found  INTEGER NOT NULL DEFAULT 0,
    failed     INTEGER NOT NULL DEFAULT 0,
    batch_size INTEGER,                    -- ISBNs per request at the run's end
    PRIMARY KEY (run_id, provider)
) WITHOUT ROWID;
-- Earlier runs kept no per-provider not_found or failed: 0 there.
INSERT INTO run_providers (run_id, provider, requests, done, batch_size)
    SELECT id, 'google', google_requests, google_done, batch_size FROM runs
    WHERE google_requests > 0 OR google_done > 0 OR batch_size IS NOT NULL;
INSERT INTO run_providers (run_id, provider, requests, done)
    SELECT id, 'openlibrary', openlibrary_requests, max(done - google_done, 0) FROM runs
    WHERE openlibrary_requests > 0;
ALTER TABLE runs DROP COLUMN google_requests;
ALTER TABLE runs DROP COLUMN openlibrary_requests;
ALTER TABLE runs DROP COLUMN google_done;
ALTER TABLE runs DROP COLUMN batch_size;

CREATE TABLE lookups_new (
    id              INTEGER PRIMARY KEY,   -- creation order: claims go oldest first
    job_id          INTEGER NOT NULL REFERENCES jobs (id),
    isbn13          TEXT    NOT NULL,      -- the job's, so a claim needs no join
    provider        TEXT    NOT NULL,      -- a ProviderId (the code's registry is the list)
    state           TEXT    NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'in_progress', 'done', 'not_found', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    lease_until     INTEGER,
    lease_owner     INTEGER,               -- runs.id of the crawl holding the lease
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    UNIQUE (job_id, provider)
);
INSERT INTO lookups_new SELECT id, job_id, isbn13, provider, state, attempts, next_attempt_at,
    lease_until, lease_owner, last_error, created_at, updated_at FROM lookups ORDER BY id;
DROP TABLE lookups;
ALTER TABLE lookups_new RENAME TO lookups;
CREATE INDEX lookups_due ON lookups (provider, next_attempt_at) WHERE state = 'pending';
CREATE INDEX lookups_leased ON lookups (lease_owner) WHERE state = 'in_progress';
CREATE INDEX lookups_missed ON lookups (provider, state) WHERE state IN ('not_found', 'failed');
CREATE INDEX lookups_done ON lookups (provider) WHERE state = 'done';
