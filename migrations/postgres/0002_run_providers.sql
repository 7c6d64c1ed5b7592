-- Providers are data, not schema: each run's figures per provider are rows, and
-- `lookups.provider` has no CHECK (the code's registry is the list). See the SQLite migration
-- of the same name.

CREATE TABLE run_providers (
    run_id     BIGINT NOT NULL REFERENCES runs (id),
    provider   TEXT   NOT NULL,
    requests   BIGINT NOT NULL DEFAULT 0,
    done       BIGINT NOT NULL DEFAULT 0,
    not_found  BIGINT NOT NULL DEFAULT 0,
    failed     BIGINT NOT NULL DEFAULT 0,
    batch_size BIGINT,
    PRIMARY KEY (run_id, provider)
);
INSERT INTO run_providers (run_id, provider, requests, done, batch_size)
    SELECT id, 'google', google_requests, google_done, batch_size FROM runs
    WHERE google_requests > 0 OR google_done > 0 OR batch_size IS NOT NULL;
INSERT INTO run_providers (run_id, provider, requests, done)
    SELECT id, 'openlibrary', openlibrary_requests, greatest(done - google_done, 0) FROM runs
    WHERE openlibrary_requests > 0;
ALTER TABLE runs DROP COLUMN google_requests;
ALTER TABLE runs DROP COLUMN openlibrary_requests;
ALTER TABLE runs DROP COLUMN google_done;
ALTER TABLE runs DROP COLUMN batch_size;
ALTER TABLE lookups DROP CONSTRAINT IF EXISTS lookups_provider_check;
