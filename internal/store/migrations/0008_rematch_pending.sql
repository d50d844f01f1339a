-- The package keys an advisory import changed, until the re-match of the stored images holding
-- them is written. The import records them in its own transaction and the re-match deletes them
-- when done, so a process killed in between leaves them here for the next start to re-match:
-- the findings never stay stale behind committed advisories.
CREATE TABLE rematch_pending (
	import_id  TEXT NOT NULL,
	ecosystem  TEXT NOT NULL,
	match_name TEXT NOT NULL,
	PRIMARY KEY (import_id, ecosystem, match_name)
);
