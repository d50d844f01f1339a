-- Notifications: integrations (Slack, signed webhooks), their deliveries (the transactional
-- outbox the dispatcher fills and the sender drains) and nothing else: the dispatcher's cursors
-- live in state.

CREATE TABLE integrations (
	name          TEXT PRIMARY KEY,
	kind          TEXT NOT NULL,
	url           TEXT NOT NULL,
	-- webhook HMAC key; never returned by the API
	secret        TEXT NOT NULL,
	min_severity  TEXT NOT NULL,
	fixable_only  INTEGER NOT NULL,
	repositories  TEXT NOT NULL, -- JSON array of globs
	events        TEXT NOT NULL, -- JSON array of event kinds
	dashboard_url TEXT NOT NULL,
	cloudevents   INTEGER NOT NULL,
	enabled       INTEGER NOT NULL,
	created_at    BIGINT NOT NULL,
	updated_at    BIGINT NOT NULL
);

CREATE TABLE deliveries (
	id           TEXT PRIMARY KEY,
	integration  TEXT NOT NULL,
	event        TEXT NOT NULL,
	image_digest TEXT NOT NULL,
	repository   TEXT NOT NULL,
	payload      {{BLOB}} NOT NULL,
	-- pending -> queued -> sent | failed
	state        TEXT NOT NULL,
	attempts     INTEGER NOT NULL,
	last_status  INTEGER NOT NULL,
	last_error   TEXT NOT NULL,
	created_at   BIGINT NOT NULL,
	updated_at   BIGINT NOT NULL,
	sent_at      BIGINT NOT NULL
);
CREATE INDEX deliveries_state ON deliveries (state, created_at);
CREATE INDEX deliveries_integration ON deliveries (integration, created_at);
