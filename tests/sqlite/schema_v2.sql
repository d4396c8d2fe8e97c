-- The schema of version 2 database files (hookline before the reference count moved to
-- refs): tests/sqlite/test_migration.py writes such a file and opens it with today's adapter.
CREATE TABLE IF NOT EXISTS subscriptions (
    id TEXT PRIMARY KEY,
    topic TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS registry_version (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT OR IGNORE INTO registry_version (id, version) VALUES (1, 0);
CREATE TABLE IF NOT EXISTS registry_changes (
    version INTEGER PRIMARY KEY,
    sub_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS subscriptions_topic ON subscriptions (topic);
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY,
    refs INTEGER NOT NULL,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS copies (
    sub_id TEXT NOT NULL,
    msg INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    due_at INTEGER NOT NULL,
    lease_token INTEGER,
    lease_owner TEXT,
    PRIMARY KEY (sub_id, msg)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS copies_due ON copies (sub_id, due_at);
CREATE TABLE IF NOT EXISTS owners (
    sub_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dlq (
    id TEXT PRIMARY KEY,
    topic TEXT NOT NULL,
    sub_id TEXT NOT NULL,
    body BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dlq_topic ON dlq (topic, id);
CREATE INDEX IF NOT EXISTS dlq_sub ON dlq (topic, sub_id, id);
CREATE TABLE IF NOT EXISTS idempotency (
    topic TEXT NOT NULL,
    key TEXT NOT NULL,
    message_id TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (topic, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idempotency_expiry ON idempotency (expires_at);
CREATE TABLE IF NOT EXISTS ins_messages (
    id TEXT PRIMARY KEY,
    touched_at INTEGER NOT NULL,
    msg INTEGER
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ins_messages_touched ON ins_messages (touched_at);
CREATE TABLE IF NOT EXISTS ins_marks (
    message_id TEXT NOT NULL,
    sub_id TEXT NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (message_id, sub_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ins_attempts (
    seq INTEGER PRIMARY KEY,
    message_id TEXT NOT NULL,
    sub_id TEXT NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS ins_attempts_message ON ins_attempts (message_id, sub_id, seq);
CREATE TABLE IF NOT EXISTS ins_log (
    seq INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    sub_id TEXT NOT NULL,
    at INTEGER NOT NULL,
    ok INTEGER NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS ins_log_sub ON ins_log (topic, sub_id, seq);
CREATE INDEX IF NOT EXISTS ins_log_at ON ins_log (at);
PRAGMA user_version = 2;
