-- Desired objects, their status, and the events recorded about them.
CREATE TABLE objects (
    kind               TEXT    NOT NULL,
    namespace          TEXT    NOT NULL,
    name               TEXT    NOT NULL,
    uid                TEXT    NOT NULL UNIQUE,
    generation         INTEGER NOT NULL,
    resource_version   INTEGER NOT NULL,
    -- 'api' or 'file:<path relative to the watched directory>'
    source             TEXT    NOT NULL,
    labels             TEXT    NOT NULL,  -- JSON object
    annotations        TEXT    NOT NULL,  -- JSON object
    spec               TEXT    NOT NULL,  -- JSON, the wire spec as written
    status             TEXT,              -- JSON, server-owned
    created_at         TEXT    NOT NULL,
    deletion_timestamp TEXT,
    PRIMARY KEY (kind, namespace, name)
);
CREATE INDEX objects_source ON objects (source);

-- One global counter for resourceVersion.
CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT INTO counters (name, value) VALUES ('resource_version', 0);

CREATE TABLE events (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    uid       TEXT    NOT NULL,
    kind      TEXT    NOT NULL,
    namespace TEXT    NOT NULL,
    name      TEXT    NOT NULL,
    time      TEXT    NOT NULL,
    type      TEXT    NOT NULL,  -- Normal | Warning
    reason    TEXT    NOT NULL,
    message   TEXT    NOT NULL
);
CREATE INDEX events_object ON events (namespace, name, id);

-- The last problem seen with each spec file of the watched directory.
CREATE TABLE source_errors (
    source  TEXT PRIMARY KEY,
    time    TEXT NOT NULL,
    message TEXT NOT NULL
);
