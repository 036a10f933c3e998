-- Settings of the installation that must not change under its data: the mode (solo or swarm)
-- the database was made for.
CREATE TABLE settings (
    name TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
