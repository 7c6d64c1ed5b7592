-- What the estimate of the quota days left needs from each run: its --daily-budget, the books
-- Google found in it, and the --batch size in use when it ended (auto adapts it).
ALTER TABLE runs ADD COLUMN daily_budget INTEGER;
ALTER TABLE runs ADD COLUMN google_done INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN batch_size INTEGER;
UPDATE runs SET google_done = done WHERE openlibrary_requests = 0;

-- The report's "latest books" without a sort of the whole table.
CREATE INDEX books_fetched ON books (fetched_at);

-- What each load of a file read (its report), so the report can show lines per input file.
CREATE TABLE loads (
    id        INTEGER PRIMARY KEY,
    source    TEXT    NOT NULL,
    lines     INTEGER NOT NULL,
    valid     INTEGER NOT NULL,
    queued    INTEGER NOT NULL,
    rejected  INTEGER NOT NULL,
    read_as   TEXT,
    problem   TEXT,
    loaded_at INTEGER NOT NULL
);
