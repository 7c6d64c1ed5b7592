-- Library classifications: the Dewey Decimal Classification (`ddc`, MARC 082 / UNIMARC 676),
-- the Library of Congress Classification (`lcc`, MARC 050) and the Library of Congress
-- Control Number (`lccn`, MARC 010), from the national libraries and Open Library's
-- `classifications` and `identifiers`. Each provider's record keeps its own; `books` merges
-- them with provenance like every other field.
ALTER TABLE provider_books ADD COLUMN ddc TEXT;
ALTER TABLE provider_books ADD COLUMN lcc TEXT;
ALTER TABLE provider_books ADD COLUMN lccn TEXT;
ALTER TABLE books ADD COLUMN ddc TEXT;
ALTER TABLE books ADD COLUMN lcc TEXT;
ALTER TABLE books ADD COLUMN lccn TEXT;
-- What reuse of a record must say where its licence asks (BnF: the source and the record's
-- date), merged like the rest: a book with a BnF record carries BnF's line.
ALTER TABLE provider_books ADD COLUMN attribution TEXT;
ALTER TABLE books ADD COLUMN attribution TEXT;

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
       b.provenance,
       b.ddc,
       b.lcc,
       b.lccn,
       b.attribution
FROM books b
JOIN jobs j ON j.isbn13 = b.isbn13;
