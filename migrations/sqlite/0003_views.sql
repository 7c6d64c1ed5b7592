-- For people with sqlite3: one row per book with its job, lists flattened to text.
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
       datetime(b.fetched_at / 1000, 'unixepoch')                        AS fetched_at
FROM books b
JOIN jobs j ON j.isbn13 = b.isbn13;

-- The questions people ask most: books per publisher, per year.
CREATE INDEX books_publisher ON books (publisher);
CREATE INDEX books_year ON books (published_year);
