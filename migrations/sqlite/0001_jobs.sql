-- The job table: one row per book (canonical ISBN-13), whatever form and file it came from.
-- Timestamps are Unix milliseconds (UTC): `datetime(col / 1000, 'unixepoch')` shows them.
CREATE TABLE jobs (
    id              INTEGER PRIMARY KEY,   -- load order: rows append, claims go oldest first
    isbn13          TEXT    NOT NULL UNIQUE,
    isbn10          TEXT,                  -- NULL for 979 books, which have no ISBN-10
    state           TEXT    NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'in_progress', 'done', 'not_found', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    lease_until     INTEGER,               -- set while in_progress
    lease_owner     INTEGER,               -- runs.id of the crawl holding the lease
    last_error      TEXT,
    source          TEXT,                  -- the file (or <stdin>) that first named the book
    source_line     INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);

-- "Claim the next N due pending rows" is a scan of this partial index in (time, load) order.
-- New rows enter it at next_attempt_at = 0 with growing ids, so loading appends to it.
CREATE INDEX jobs_due ON jobs (next_attempt_at) WHERE state = 'pending';
-- Lease recovery and heartbeats touch only the rows one run holds.
CREATE INDEX jobs_leased ON jobs (lease_owner) WHERE state = 'in_progress';

-- Every input line that did not yield a valid ISBN, kept so it can be fixed and loaded again.
CREATE TABLE rejected_lines (
    id         INTEGER PRIMARY KEY,
    source     TEXT    NOT NULL,
    line       INTEGER NOT NULL,
    raw        TEXT    NOT NULL,           -- the line as read (lossy UTF-8, cut at 1000 chars)
    reason     TEXT    NOT NULL,           -- a stable code, see the README
    created_at INTEGER NOT NULL,
    UNIQUE (source, line, raw)             -- loading a file again adds no duplicates
);
CREATE INDEX rejected_lines_reason ON rejected_lines (reason);
