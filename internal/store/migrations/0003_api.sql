-- The API server: bearer tokens (only their SHA-256 is kept) and indexes for the API's filters.

CREATE TABLE api_tokens (
	id           TEXT PRIMARY KEY,
	hash         {{BLOB}} NOT NULL UNIQUE,
	name         TEXT NOT NULL,
	scope        TEXT NOT NULL,
	created_at   BIGINT NOT NULL,
	last_used_at BIGINT NOT NULL
);

-- The image list's orders, so a page is read in index order instead of sorting every image.
CREATE INDEX images_indexed_at ON images (indexed_at, digest);
CREATE INDEX images_name_platform ON images (name, platform, digest);
CREATE INDEX packages_name_version ON packages (name, version);
-- Vulnerability detail pages through the images a vulnerability affects in digest order.
CREATE INDEX findings_vuln_image ON findings (vuln_id, image_digest);
CREATE INDEX findings_severity ON findings (severity, image_digest);
CREATE INDEX tags_tag ON tags (tag);
