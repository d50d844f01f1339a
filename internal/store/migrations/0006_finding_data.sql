-- Finding content stored once (issue 3's re-match): the vuln.Finding JSON of a finding is the
-- same for every image holding that package version, and a change event repeats it. Findings
-- and change events now reference it by its SHA-256 instead of each carrying a ~600-byte copy,
-- which was most of the bytes a re-match wrote.
--
-- Rows are never deleted from finding_data by the store: history references them forever, and
-- what only an updated-in-place finding referenced is a few rows per advisory revision.
CREATE TABLE finding_data (
	hash {{BLOB}} PRIMARY KEY,
	data {{BLOB}} NOT NULL
);

-- findings.hash already is the SHA-256 of findings.data.
INSERT INTO finding_data (hash, data) SELECT DISTINCT hash, data FROM findings WHERE true
	ON CONFLICT (hash) DO NOTHING;

-- SQLite cannot drop a column of a table it must rebuild anyway, and without the JSON a finding
-- row is small enough to live in its primary key's b-tree: WITHOUT ROWID saves a b-tree write
-- per finding and a table lookup per finding a re-match reads.
--sqlite CREATE TABLE findings_new (
--sqlite 	image_digest  TEXT NOT NULL REFERENCES images (digest) ON DELETE CASCADE,
--sqlite 	pkg_type      TEXT NOT NULL,
--sqlite 	pkg_name      TEXT NOT NULL,
--sqlite 	pkg_version   TEXT NOT NULL,
--sqlite 	vuln_id       TEXT NOT NULL,
--sqlite 	ecosystem     TEXT NOT NULL,
--sqlite 	match_name    TEXT NOT NULL,
--sqlite 	severity      TEXT NOT NULL,
--sqlite 	fixed_version TEXT NOT NULL,
--sqlite 	hash          BLOB NOT NULL, -- finding_data.hash
--sqlite 	PRIMARY KEY (image_digest, pkg_type, pkg_name, pkg_version, vuln_id)
--sqlite ) WITHOUT ROWID;
--sqlite INSERT INTO findings_new (image_digest, pkg_type, pkg_name, pkg_version, vuln_id, ecosystem, match_name,
--sqlite 	severity, fixed_version, hash)
--sqlite SELECT image_digest, pkg_type, pkg_name, pkg_version, vuln_id, ecosystem, match_name, severity, fixed_version, hash
--sqlite FROM findings;
--sqlite DROP TABLE findings;
--sqlite ALTER TABLE findings_new RENAME TO findings;
--sqlite CREATE INDEX findings_vuln_image ON findings (vuln_id, image_digest);
--sqlite CREATE INDEX findings_severity ON findings (severity, image_digest);
--postgres ALTER TABLE findings DROP COLUMN data;
-- A re-match rewrites a finding whose fixed version or severity moved. Room left in each page
-- lets PostgreSQL update it in place (a HOT update: no new entry in each of the three indexes).
--postgres ALTER TABLE findings SET (fillfactor = 90);

-- Change events recorded before this migration keep their own copy under a key that no SHA-256
-- can equal ("change:" and the event id: never 32 bytes), since SQLite has no SHA-256 to
-- compute the real one here.
--sqlite ALTER TABLE finding_changes ADD COLUMN hash BLOB NOT NULL DEFAULT x'';
--postgres ALTER TABLE finding_changes ADD COLUMN hash BYTEA NOT NULL DEFAULT ''::bytea;
INSERT INTO finding_data (hash, data) SELECT CAST('change:' || id AS {{BLOB}}), data FROM finding_changes WHERE true
	ON CONFLICT (hash) DO NOTHING;
UPDATE finding_changes SET hash = CAST('change:' || id AS {{BLOB}});
--postgres ALTER TABLE finding_changes ALTER COLUMN hash DROP DEFAULT;
ALTER TABLE finding_changes DROP COLUMN data;
