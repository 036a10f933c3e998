-- Docker labels cannot change after creation, so the update-class hash applied in place is
-- remembered here: "<container id> <hash>".
ALTER TABLE objects ADD COLUMN applied_update TEXT;
