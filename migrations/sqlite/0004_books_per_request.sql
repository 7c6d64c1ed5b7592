-- Quota efficiency of each run (what --batch improves): books stored per request sent.
ALTER TABLE runs ADD COLUMN books_per_request REAL
    GENERATED ALWAYS AS (CASE WHEN requests > 0 THEN round(1.0 * done / requests, 3) END) VIRTUAL;
