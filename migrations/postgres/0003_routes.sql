-- Routing: see migrations/sqlite/0010_routes.sql.
ALTER TABLE lookup_marks ADD COLUMN routes TEXT;
