-- Several instances on one database: the leader's lease and every instance's last heartbeat.
-- Times are the database's clock in unix milliseconds, so instances' clocks never disagree.
CREATE TABLE leases (
    name       TEXT    PRIMARY KEY,  -- 'leader'
    holder     TEXT    NOT NULL,     -- the holding instance's id
    generation INTEGER NOT NULL,     -- fencing generation: +1 on every acquisition
    since_ms   INTEGER NOT NULL,     -- when the holder acquired it
    expires_ms INTEGER NOT NULL
);

CREATE TABLE instances (
    id           TEXT    PRIMARY KEY,
    address      TEXT    NOT NULL,
    version      TEXT    NOT NULL,
    started_ms   INTEGER NOT NULL,
    last_seen_ms INTEGER NOT NULL
);
