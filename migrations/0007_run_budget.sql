-- The --daily-budget each run used, so the report can estimate the days left at that budget.
ALTER TABLE runs ADD COLUMN daily_budget INTEGER;

-- The report's "latest books" without a sort of the whole table.
CREATE INDEX books_fetched ON books (fetched_at);
