-- Packages are stored once per distinct group, a "package set": an image's packages are the union
-- of its sets, one per layer that introduced packages, named by the hash of their rows. Images
-- built on one base share the base's set, so storing a pushed image writes the rows of its own
-- layers only (one row instead of ~800 for an application on a Debian base), where writing every
-- package row of every image scattered ~2400 B-tree pages per image.
CREATE TABLE package_sets (
	id            TEXT PRIMARY KEY, -- hex SHA-256 of the rows; an image digest for sets migrated from 0001's table
	package_count INTEGER NOT NULL
);

CREATE TABLE set_packages (
	set_id     TEXT NOT NULL REFERENCES package_sets (id) ON DELETE CASCADE,
	idx        INTEGER NOT NULL, -- position in the set
	type       TEXT NOT NULL,
	name       TEXT NOT NULL,
	version    TEXT NOT NULL,
	purl       TEXT NOT NULL,
	ecosystem  TEXT NOT NULL,
	match_name TEXT NOT NULL,
-- SQLite: clustered by match key, as the packages table was (the re-match's hot path).
--sqlite 	PRIMARY KEY (ecosystem, match_name, set_id, idx)
--sqlite ) WITHOUT ROWID;
--sqlite CREATE UNIQUE INDEX set_packages_set ON set_packages (set_id, idx);
--postgres 	PRIMARY KEY (set_id, idx)
--postgres );
--postgres CREATE INDEX set_packages_key ON set_packages (ecosystem, match_name);
CREATE INDEX set_packages_name_version ON set_packages (name, version);

CREATE TABLE image_sets (
	image_digest TEXT NOT NULL REFERENCES images (digest) ON DELETE CASCADE,
	pos          INTEGER NOT NULL, -- order of the sets in the image
	set_id       TEXT NOT NULL REFERENCES package_sets (id),
	PRIMARY KEY (image_digest, pos)
);
CREATE INDEX image_sets_set ON image_sets (set_id, image_digest);

-- Existing images keep their packages as one set each, named by the image digest.
INSERT INTO package_sets (id, package_count)
	SELECT image_digest, COUNT(*) FROM packages GROUP BY image_digest;
INSERT INTO set_packages (set_id, idx, type, name, version, purl, ecosystem, match_name)
	SELECT image_digest, idx, type, name, version, purl, ecosystem, match_name FROM packages;
INSERT INTO image_sets (image_digest, pos, set_id)
	SELECT id, 0, id FROM package_sets;
DROP TABLE packages;

-- Readers keep seeing one row per package of an image; idx orders an image's packages.
CREATE VIEW packages AS
	SELECT s.image_digest, s.pos * 1000000 + p.idx AS idx, p.type, p.name, p.version, p.purl,
		p.ecosystem, p.match_name
	FROM image_sets s JOIN set_packages p ON p.set_id = s.set_id;
