-- What the crawl stores: books, the runs that fetched them, and the requests spent per quota day.

-- One row per book found and verified; written in the same transaction that marks its job done.
CREATE TABLE books (
    isbn13         TEXT    PRIMARY KEY NOT NULL REFERENCES jobs (isbn13),
    isbn10         TEXT,
    volume_id      TEXT,                   -- Google's volume id
    title          TEXT,
    subtitle       TEXT,
    authors        TEXT,                   -- JSON array of strings
    publisher      TEXT,
    published_date TEXT,                   -- as Google sent it: 2008, 2008-09, 2008-09-14, ...
    published_year INTEGER,                -- derived leniently; NULL when there is no year
    description    TEXT,                   -- may hold HTML, as sent
    page_count     INTEGER,
    categories     TEXT,                   -- JSON array of strings
    language       TEXT,
    average_rating REAL,
    ratings_count  INTEGER,
    thumbnail      TEXT,
    raw_json       TEXT    NOT NULL,       -- the whole matched item: nothing paid for is lost
    fetched_at     INTEGER NOT NULL,
    run_id         INTEGER
);

-- One row per crawl; a row with no ended_at whose process is gone was killed.
CREATE TABLE runs (
    id            INTEGER PRIMARY KEY,
    command       TEXT    NOT NULL,
    host          TEXT    NOT NULL,
    pid           INTEGER NOT NULL,
    pid_start     TEXT,                    -- the process start time, so a reused pid is not taken for us
    started_at    INTEGER NOT NULL,
    heartbeat_at  INTEGER NOT NULL,
    ended_at      INTEGER,
    stop_reason   TEXT,                    -- finished, quota, budget, api-rejected, interrupted, error, killed
    requests      INTEGER NOT NULL DEFAULT 0,
    done          INTEGER NOT NULL DEFAULT 0,
    not_found     INTEGER NOT NULL DEFAULT 0,
    failed        INTEGER NOT NULL DEFAULT 0,
    retried       INTEGER NOT NULL DEFAULT 0,
    given_back    INTEGER NOT NULL DEFAULT 0
);

-- Requests sent per quota day (the date in US Pacific time, when Google's quota resets).
CREATE TABLE quota_days (
    day          TEXT    PRIMARY KEY NOT NULL,   -- YYYY-MM-DD, Pacific
    requests     INTEGER NOT NULL DEFAULT 0,
    exhausted_at INTEGER,                        -- when the quota or --daily-budget ran out
    resets_at    INTEGER                         -- when the quota day ends (midnight Pacific)
);
