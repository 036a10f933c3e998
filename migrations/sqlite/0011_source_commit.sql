-- The git commit a file-owned object was last applied from (`wharf serve --git`).
ALTER TABLE objects ADD COLUMN source_commit TEXT;
