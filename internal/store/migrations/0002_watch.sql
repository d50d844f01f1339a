-- The watcher: which index (multi-platform manifest list) an image was pulled through, images that
-- failed to index for good, and progress markers (baseline listing, backfill) that survive restarts.

ALTER TABLE images ADD COLUMN index_digest TEXT NOT NULL DEFAULT '';
CREATE INDEX images_index_digest ON images (index_digest);

CREATE TABLE failures (
	digest     TEXT PRIMARY KEY,
	repository TEXT NOT NULL,
	tag        TEXT NOT NULL,
	error      TEXT NOT NULL,
	attempts   INTEGER NOT NULL,
	failed_at  BIGINT NOT NULL
);

CREATE TABLE state (
	key        TEXT PRIMARY KEY,
	value      TEXT NOT NULL,
	updated_at BIGINT NOT NULL
);
