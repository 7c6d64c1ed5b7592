-- Where in its source a job came from, when a line number is not the whole story: a MARC
-- record's control number (001), so a book can be found in the catalogue it came from.
ALTER TABLE jobs ADD COLUMN source_ref TEXT;
