-- Times are Unix nanoseconds (BIGINT) in both dialects: one Go code path, exact round trips.
-- {{BLOB}} and {{ID}} are replaced per dialect, and lines starting "--sqlite " or "--postgres "
-- are kept (without that prefix) for that dialect only (see migrate.go).

CREATE TABLE images (
	digest        TEXT PRIMARY KEY,
	reference     TEXT NOT NULL,
	name          TEXT NOT NULL,
	platform      TEXT NOT NULL,
	os_id         TEXT NOT NULL,
	os_version    TEXT NOT NULL,
	created       BIGINT,
	indexed_at    BIGINT NOT NULL,
	package_count INTEGER NOT NULL,
	sbom          {{BLOB}} NOT NULL
);
CREATE INDEX images_name ON images (name);

CREATE TABLE tags (
	repository TEXT NOT NULL,
	tag        TEXT NOT NULL,
	digest     TEXT NOT NULL,
	updated_at BIGINT NOT NULL,
	PRIMARY KEY (repository, tag)
);
CREATE INDEX tags_digest ON tags (digest);

CREATE TABLE layers (
	image_digest TEXT NOT NULL REFERENCES images (digest) ON DELETE CASCADE,
	idx          INTEGER NOT NULL,
	digest       TEXT NOT NULL,
	diff_id      TEXT NOT NULL,
	PRIMARY KEY (image_digest, idx)
);
CREATE INDEX layers_diff_id ON layers (diff_id);

CREATE TABLE packages (
	image_digest TEXT NOT NULL REFERENCES images (digest) ON DELETE CASCADE,
	idx          INTEGER NOT NULL, -- position in the SBOM
	type         TEXT NOT NULL,
	name         TEXT NOT NULL,
	version      TEXT NOT NULL,
	purl         TEXT NOT NULL,
	ecosystem    TEXT NOT NULL,
	match_name   TEXT NOT NULL,
-- SQLite: clustered by match key, so finding the images of a key reads neighbouring rows
-- instead of one table lookup per package (the re-match's hot path).
--sqlite 	PRIMARY KEY (ecosystem, match_name, image_digest, idx)
--sqlite ) WITHOUT ROWID;
--sqlite CREATE UNIQUE INDEX packages_image ON packages (image_digest, idx);
--postgres 	PRIMARY KEY (image_digest, idx)
--postgres );
--postgres CREATE INDEX packages_key ON packages (ecosystem, match_name);

CREATE TABLE advisories (
	id       TEXT PRIMARY KEY,
	source   TEXT NOT NULL,
	modified BIGINT NOT NULL,
	hash     {{BLOB}} NOT NULL,
	data     {{BLOB}} NOT NULL,
	details  TEXT NOT NULL
);
CREATE INDEX advisories_source ON advisories (source);

CREATE TABLE affected (
	ecosystem   TEXT NOT NULL,
	name        TEXT NOT NULL,
	advisory_id TEXT NOT NULL REFERENCES advisories (id) ON DELETE CASCADE,
	PRIMARY KEY (ecosystem, name, advisory_id)
);
CREATE INDEX affected_advisory ON affected (advisory_id);

CREATE TABLE findings (
	image_digest  TEXT NOT NULL REFERENCES images (digest) ON DELETE CASCADE,
	pkg_type      TEXT NOT NULL,
	pkg_name      TEXT NOT NULL,
	pkg_version   TEXT NOT NULL,
	vuln_id       TEXT NOT NULL,
	ecosystem     TEXT NOT NULL,
	match_name    TEXT NOT NULL,
	severity      TEXT NOT NULL,
	fixed_version TEXT NOT NULL,
	-- hash of data: a re-match compares content without reading it back
	hash          {{BLOB}} NOT NULL,
	data          {{BLOB}} NOT NULL,
	PRIMARY KEY (image_digest, pkg_type, pkg_name, pkg_version, vuln_id)
);
CREATE INDEX findings_vuln ON findings (vuln_id);

CREATE TABLE finding_changes (
	id           {{ID}},
	time         BIGINT NOT NULL,
	image_digest TEXT NOT NULL,
	kind         TEXT NOT NULL,
	reason       TEXT NOT NULL,
	data         {{BLOB}} NOT NULL
);
CREATE INDEX finding_changes_image ON finding_changes (image_digest, id);

CREATE TABLE sources (
	name           TEXT PRIMARY KEY,
	url            TEXT NOT NULL,
	etag           TEXT NOT NULL,
	last_modified  TEXT NOT NULL,
	imported_at    BIGINT NOT NULL,
	advisory_count INTEGER NOT NULL,
	error          TEXT NOT NULL
);
