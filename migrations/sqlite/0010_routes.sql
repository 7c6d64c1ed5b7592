-- Routing: a provider may be asked about some ISBNs only (a national library about its
-- country's registration groups). A mark says under which routes its lookups were made for
-- every job up to job_id: NULL is every ISBN, as every mark before this was; else the ISBN-13
-- prefixes, comma-separated. A mark made under other routes counts for nothing.
ALTER TABLE lookup_marks ADD COLUMN routes TEXT;
