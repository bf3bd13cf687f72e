-- Notes enhancement: notes record their source, the directive they concern and a severity.
-- Existing notes get source 'user' and severity 'info'.

ALTER TABLE notes ADD COLUMN source TEXT DEFAULT 'user';
ALTER TABLE notes ADD COLUMN directive_name TEXT;
ALTER TABLE notes ADD COLUMN severity TEXT DEFAULT 'info';

CREATE INDEX idx_notes_directive ON notes (directive_name);
CREATE INDEX idx_notes_severity ON notes (severity);
CREATE INDEX idx_notes_source ON notes (source);
