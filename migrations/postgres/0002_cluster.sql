-- Several instances on one database: the leader's lease and every instance's last heartbeat.
-- Times are the database's clock in unix milliseconds, so instances' clocks never disagree.
CREATE TABLE leases (
    name       TEXT   PRIMARY KEY,  -- 'leader'
    holder     TEXT   NOT NULL,     -- the holding instance's id
    generation BIGINT NOT NULL,     -- fencing generation: +1 on every acquisition
    since_ms   BIGINT NOT NULL,     -- when the holder acquired it
    expires_ms BIGINT NOT NULL
);

CREATE TABLE instances (
    id           TEXT   PRIMARY KEY,
    address      TEXT   NOT NULL,
    version      TEXT   NOT NULL,
    started_ms   BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL
);
