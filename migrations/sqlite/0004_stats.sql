-- Container stats: raw samples and their rollups (avg / max per minute and per hour). Rows of
-- an app are removed with it; older rows by retention. Keyed (uid, time) so one app's range is
-- one index range scan.
CREATE TABLE stats_samples (
    uid       TEXT    NOT NULL,
    t         INTEGER NOT NULL,  -- unix milliseconds
    cpu       REAL    NOT NULL,  -- percent of one core
    mem       INTEGER NOT NULL,  -- bytes in use, page cache excluded
    mem_limit INTEGER NOT NULL,
    mem_max   INTEGER NOT NULL,
    net_rx    INTEGER NOT NULL,  -- cumulative bytes
    net_tx    INTEGER NOT NULL,
    blk_read  INTEGER NOT NULL,
    blk_write INTEGER NOT NULL,
    pids      INTEGER NOT NULL,
    PRIMARY KEY (uid, t)
) WITHOUT ROWID;

CREATE TABLE stats_rollups (
    uid       TEXT    NOT NULL,
    step      INTEGER NOT NULL,  -- seconds: 60 or 3600
    t         INTEGER NOT NULL,  -- bucket start, unix milliseconds
    n         INTEGER NOT NULL,  -- raw samples in the bucket
    cpu_avg   REAL    NOT NULL,
    cpu_max   REAL    NOT NULL,
    mem_avg   INTEGER NOT NULL,
    mem_max   INTEGER NOT NULL,
    mem_limit INTEGER NOT NULL,
    net_rx    INTEGER NOT NULL,  -- counters: the bucket's last (largest) value
    net_tx    INTEGER NOT NULL,
    blk_read  INTEGER NOT NULL,
    blk_write INTEGER NOT NULL,
    pids_max  INTEGER NOT NULL,
    PRIMARY KEY (uid, step, t)
) WITHOUT ROWID;
