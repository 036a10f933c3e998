-- The update-class hash applied in place, and the container it was applied to, in two columns
-- instead of one "<container id> <hash>" string.
ALTER TABLE objects ADD COLUMN applied_container_id TEXT;
ALTER TABLE objects ADD COLUMN applied_update_hash TEXT;
UPDATE objects
SET applied_container_id = substr(applied_update, 1, instr(applied_update, ' ') - 1),
    applied_update_hash = substr(applied_update, instr(applied_update, ' ') + 1)
WHERE applied_update IS NOT NULL AND instr(applied_update, ' ') > 1;
ALTER TABLE objects DROP COLUMN applied_update;
