-- A second source. Each book is asked of each provider in a lookup of its own (state,
-- attempts, backoff, lease, last error), each provider's record is kept whole, and `books`
-- becomes the merged row: each field from the first provider (in precedence order) that has
-- it, with `provenance` saying where each came from. `jobs.state` is now derived from the
-- job's lookups: done if any provider found the book, not_found when every provider asked said
-- so, failed or pending otherwise.

CREATE TABLE lookups (
    id              INTEGER PRIMARY KEY,   -- creation order: claims go oldest first
    job_id          INTEGER NOT NULL REFERENCES jobs (id),
    isbn13          TEXT    NOT NULL,      -- the job's, so a claim needs no join
    provider        TEXT    NOT NULL CHECK (provider IN ('google', 'openlibrary')),
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
-- "Claim the next N due lookups of provider P" is a scan of this partial index.
CREATE INDEX lookups_due ON lookups (provider, next_attempt_at) WHERE state = 'pending';
CREATE INDEX lookups_leased ON lookups (lease_owner) WHERE state = 'in_progress';
-- `--fill missing` starts from the lookups a provider did not find: few, so a small index.
CREATE INDEX lookups_missed ON lookups (provider, state) WHERE state IN ('not_found', 'failed');
-- With the two above, every count of lookups per provider and state reads an index, not the table.
CREATE INDEX lookups_done ON lookups (provider) WHERE state = 'done';

-- How far (in job ids, which only grow) each provider's lookups were made for every job, so a
-- crawl on a million jobs makes lookups only for the jobs loaded since.
CREATE TABLE lookup_marks (
    provider TEXT    PRIMARY KEY NOT NULL,
    job_id   INTEGER NOT NULL
);

-- Each provider's verified record, whole (nothing paid for is thrown away).
CREATE TABLE provider_books (
    isbn13         TEXT    NOT NULL REFERENCES jobs (isbn13),
    provider       TEXT    NOT NULL,
    record_id      TEXT,                   -- Google's volume id, Open Library's edition key
    title          TEXT,
    subtitle       TEXT,
    authors        TEXT,                   -- JSON array of strings
    publisher      TEXT,
    published_date TEXT,
    published_year INTEGER,
    description    TEXT,
    page_count     INTEGER,
    categories     TEXT,                   -- JSON array (Open Library: its subjects)
    language       TEXT,
    average_rating REAL,
    ratings_count  INTEGER,
    thumbnail      TEXT,                   -- Open Library: the medium cover
    raw_json       TEXT    NOT NULL,
    fetched_at     INTEGER NOT NULL,
    run_id         INTEGER,
    PRIMARY KEY (isbn13, provider)
);

ALTER TABLE books ADD COLUMN openlibrary_key TEXT;   -- /books/OL...M
ALTER TABLE books ADD COLUMN provenance TEXT;        -- {"title":"google","authors":"openlibrary",...}

-- Everything Google found so far is Google's record, and the merged row is it.
INSERT INTO provider_books (isbn13, provider, record_id, title, subtitle, authors, publisher,
    published_date, published_year, description, page_count, categories, language,
    average_rating, ratings_count, thumbnail, raw_json, fetched_at, run_id)
SELECT isbn13, 'google', volume_id, title, subtitle, authors, publisher, published_date,
    published_year, description, page_count, categories, language, average_rating,
    ratings_count, thumbnail, raw_json, fetched_at, run_id
FROM books;
UPDATE books SET provenance = json_patch('{}', json_object(
    'title', CASE WHEN title IS NOT NULL THEN 'google' END,
    'subtitle', CASE WHEN subtitle IS NOT NULL THEN 'google' END,
    'authors', CASE WHEN authors IS NOT NULL THEN 'google' END,
    'publisher', CASE WHEN publisher IS NOT NULL THEN 'google' END,
    'published_date', CASE WHEN published_date IS NOT NULL THEN 'google' END,
    'description', CASE WHEN description IS NOT NULL THEN 'google' END,
    'page_count', CASE WHEN page_count IS NOT NULL THEN 'google' END,
    'categories', CASE WHEN categories IS NOT NULL THEN 'google' END,
    'language', CASE WHEN language IS NOT NULL THEN 'google' END,
    'average_rating', CASE WHEN average_rating IS NOT NULL THEN 'google' END,
    'ratings_count', CASE WHEN ratings_count IS NOT NULL THEN 'google' END,
    'thumbnail', CASE WHEN thumbnail IS NOT NULL THEN 'google' END));

-- Every job Google has touched keeps its state, attempts, error and lease as its Google lookup.
-- Jobs never asked get their lookups when a crawl names its providers.
INSERT INTO lookups (job_id, isbn13, provider, state, attempts, next_attempt_at, lease_until,
    lease_owner, last_error, created_at, updated_at)
SELECT id, isbn13, 'google', state, attempts, next_attempt_at, lease_until, lease_owner,
    last_error, created_at, updated_at
FROM jobs
WHERE state != 'pending' OR attempts > 0 OR last_error IS NOT NULL;

-- Leases live on lookups now; "how many jobs are open" is a small index of its own.
UPDATE jobs SET lease_owner = NULL, lease_until = NULL;
DROP INDEX jobs_due;
DROP INDEX jobs_leased;
CREATE INDEX jobs_open ON jobs (state) WHERE state IN ('pending', 'in_progress');

-- Runs count requests per provider too (`requests` stays the total).
ALTER TABLE runs ADD COLUMN google_requests INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN openlibrary_requests INTEGER NOT NULL DEFAULT 0;
UPDATE runs SET google_requests = requests;

DROP VIEW books_flat;
CREATE VIEW books_flat AS
SELECT b.isbn13,
       b.isbn10,
       j.state,
       b.title,
       b.subtitle,
       (SELECT group_concat(value, '; ') FROM json_each(b.authors))    AS authors,
       b.publisher,
       b.published_date,
       b.published_year,
       b.page_count,
       (SELECT group_concat(value, '; ') FROM json_each(b.categories)) AS categories,
       b.language,
       b.average_rating,
       b.ratings_count,
       b.description,
       b.thumbnail,
       b.volume_id,
       j.source,
       j.source_line,
       datetime(b.fetched_at / 1000, 'unixepoch')                        AS fetched_at,
       b.openlibrary_key,
       b.provenance
FROM books b
JOIN jobs j ON j.isbn13 = b.isbn13;
