-- Availability of each app, from Docker's event stream as it happens: every state transition
-- (started, died, oom, paused, unpaused, stopped, health changes), wharf's own view at start-up
-- and after an outage, and 'unknown' for the time wharf was not watching.
CREATE TABLE uptime_transitions (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    uid    TEXT    NOT NULL,
    t      INTEGER NOT NULL,  -- unix milliseconds
    state  TEXT    NOT NULL,  -- up | down | unknown
    event  TEXT    NOT NULL,  -- started, died, oom, paused, unpaused, stopped, unhealthy, ...
    detail TEXT    NOT NULL
);
CREATE INDEX uptime_by_app ON uptime_transitions (uid, t);

-- When each wharf instance last watched the engine: the start of the gap after a restart.
CREATE TABLE uptime_heartbeat (
    instance TEXT    PRIMARY KEY,
    t        INTEGER NOT NULL
);
