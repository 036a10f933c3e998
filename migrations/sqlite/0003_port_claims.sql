-- Host ports each app holds: its port area (protocol '*': every protocol) and the host ports
-- it publishes explicitly. Kept in step with the object on every write, removed when the
-- object is forgotten, so blocks never overlap and survive restarts.
ALTER TABLE objects ADD COLUMN host_port_root INTEGER;
CREATE TABLE port_claims (
    uid       TEXT    NOT NULL,
    namespace TEXT    NOT NULL,
    name      TEXT    NOT NULL,
    first     INTEGER NOT NULL,
    last      INTEGER NOT NULL,
    protocol  TEXT    NOT NULL   -- tcp | udp | sctp | *
);
CREATE INDEX port_claims_range ON port_claims (first, last);
CREATE INDEX port_claims_uid ON port_claims (uid);
