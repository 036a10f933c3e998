-- Swarm mode: per-task stats series beside each app's own, and host readings per node.
-- `task` is '' for an app's series (its container in solo mode, the sum of its tasks in swarm
-- mode) and the Swarm task id for a task's series. `node` is '' for the host wharf runs on and
-- the Swarm node id for the readings a node agent sends.
CREATE TABLE stats_samples_new (
    uid       TEXT    NOT NULL,
    task      TEXT    NOT NULL DEFAULT '',
    t         INTEGER NOT NULL,
    cpu       REAL    NOT NULL,
    mem       INTEGER NOT NULL,
    mem_limit INTEGER NOT NULL,
    mem_max   INTEGER NOT NULL,
    net_rx    INTEGER NOT NULL,
    net_tx    INTEGER NOT NULL,
    blk_read  INTEGER NOT NULL,
    blk_write INTEGER NOT NULL,
    pids      INTEGER NOT NULL,
    PRIMARY KEY (uid, task, t)
) WITHOUT ROWID;
INSERT INTO stats_samples_new (uid, task, t, cpu, mem, mem_limit, mem_max, net_rx, net_tx, blk_read, blk_write, pids)
    SELECT uid, '', t, cpu, mem, mem_limit, mem_max, net_rx, net_tx, blk_read, blk_write, pids FROM stats_samples;
DROP TABLE stats_samples;
ALTER TABLE stats_samples_new RENAME TO stats_samples;
CREATE INDEX stats_samples_by_time ON stats_samples (t);

CREATE TABLE stats_rollups_new (
    uid       TEXT    NOT NULL,
    task      TEXT    NOT NULL DEFAULT '',
    step      INTEGER NOT NULL,
    t         INTEGER NOT NULL,
    n         INTEGER NOT NULL,
    cpu_avg   REAL    NOT NULL,
    cpu_max   REAL    NOT NULL,
    mem_avg   INTEGER NOT NULL,
    mem_max   INTEGER NOT NULL,
    mem_limit INTEGER NOT NULL,
    net_rx    INTEGER NOT NULL,
    net_tx    INTEGER NOT NULL,
    blk_read  INTEGER NOT NULL,
    blk_write INTEGER NOT NULL,
    pids_max  INTEGER NOT NULL,
    PRIMARY KEY (uid, task, step, t)
) WITHOUT ROWID;
INSERT INTO stats_rollups_new (uid, task, step, t, n, cpu_avg, cpu_max, mem_avg, mem_max, mem_limit, net_rx, net_tx, blk_read, blk_write, pids_max)
    SELECT uid, '', step, t, n, cpu_avg, cpu_max, mem_avg, mem_max, mem_limit, net_rx, net_tx, blk_read, blk_write, pids_max FROM stats_rollups;
DROP TABLE stats_rollups;
ALTER TABLE stats_rollups_new RENAME TO stats_rollups;

CREATE TABLE host_samples_new (
    node TEXT    NOT NULL DEFAULT '',
    t    INTEGER NOT NULL,
    doc  TEXT    NOT NULL,
    PRIMARY KEY (node, t)
) WITHOUT ROWID;
INSERT INTO host_samples_new (node, t, doc) SELECT '', t, doc FROM host_samples;
DROP TABLE host_samples;
ALTER TABLE host_samples_new RENAME TO host_samples;
CREATE INDEX host_samples_by_time ON host_samples (t);
