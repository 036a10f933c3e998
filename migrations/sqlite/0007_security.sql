-- API tokens. Only a SHA-256 of each secret is kept; the secret is shown once, at creation.
CREATE TABLE tokens (
    id          TEXT PRIMARY KEY,           -- public id, e.g. tok_3f9a1c0d
    sha256      BLOB NOT NULL UNIQUE,
    description TEXT NOT NULL,
    grants      TEXT NOT NULL,              -- JSON [{namespace, role}]; namespace '*' is every namespace
    created_at  TEXT NOT NULL,
    created_by  TEXT NOT NULL,              -- token id of the admin who created it
    expires_at  TEXT,                       -- RFC 3339; NULL never expires
    revoked_at  TEXT
);

-- Who did what, when, and how it ended: every write and action through the API.
CREATE TABLE audit (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    time      TEXT    NOT NULL,
    token_id  TEXT    NOT NULL,
    method    TEXT    NOT NULL,
    route     TEXT    NOT NULL,             -- the route template, e.g. /api/v1/namespaces/{ns}/apps/{name}
    path      TEXT    NOT NULL,             -- the path as requested
    namespace TEXT,
    status    INTEGER NOT NULL,
    result    TEXT    NOT NULL              -- what was done, or why it was refused
);
CREATE INDEX audit_by_time ON audit (time);
CREATE INDEX audit_by_token ON audit (token_id, id);

-- Requests to approve an image (with --require-approved-images an App may only use a declared Image).
CREATE TABLE image_requests (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    reference    TEXT NOT NULL,             -- canonical reference
    reason       TEXT NOT NULL,
    requested_by TEXT NOT NULL,             -- token id
    requested_at TEXT NOT NULL,
    state        TEXT NOT NULL,             -- Pending | Approved | Rejected
    decided_by   TEXT,
    decided_at   TEXT,
    message      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX image_requests_by_ref ON image_requests (reference, state);

-- Per-namespace overrides of the server's policy flags (JSON, only the fields that differ).
CREATE TABLE namespace_policies (
    namespace  TEXT PRIMARY KEY,
    policy     TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL
);
