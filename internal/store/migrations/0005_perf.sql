-- findings_vuln (vuln_id) is a prefix of findings_vuln_image (vuln_id, image_digest), which
-- answers the same lookups: one index fewer to write for every finding added or removed.
DROP INDEX findings_vuln;
