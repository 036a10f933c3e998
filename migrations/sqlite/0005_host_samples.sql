-- Host statistics, one JSON reading per sampling round, kept as long as raw container samples.
CREATE TABLE host_samples (
    t   INTEGER PRIMARY KEY,  -- unix milliseconds
    doc TEXT    NOT NULL      -- JSON: cpu, contextSwitches, disk, network, loadAverage
);
