-- Library classifications: see migrations/sqlite/0011_classifications.sql.
ALTER TABLE provider_books ADD COLUMN ddc TEXT, ADD COLUMN lcc TEXT, ADD COLUMN lccn TEXT,
    ADD COLUMN attribution TEXT;
ALTER TABLE books ADD COLUMN ddc TEXT, ADD COLUMN lcc TEXT, ADD COLUMN lccn TEXT,
    ADD COLUMN attribution TEXT;

CREATE OR REPLACE VIEW books_flat AS
SELECT b.isbn13,
       b.isbn10,
       j.state,
       b.title,
       b.subtitle,
       (SELECT string_agg(a, '; ') FROM jsonb_array_elements_text(b.authors::jsonb) a)    AS authors,
       b.publisher,
       b.published_date,
       b.published_year,
       b.page_count,
       (SELECT string_agg(c, '; ') FROM jsonb_array_elements_text(b.categories::jsonb) c) AS categories,
       b.language,
       b.average_rating,
       b.ratings_count,
       b.description,
       b.thumbnail,
       b.volume_id,
       j.source,
       j.source_line,
       to_char(to_timestamp(b.fetched_at / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') AS fetched_at,
       b.openlibrary_key,
       b.provenance,
       b.ddc,
       b.lcc,
       b.lccn,
       b.attribution
FROM books b
JOIN jobs j ON j.isbn13 = b.isbn13;
