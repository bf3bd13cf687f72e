-- Removes the notes enhancement: notes lose their source, directive name and severity.

DROP INDEX idx_notes_source;
DROP INDEX idx_notes_severity;
DROP INDEX idx_notes_directive;

ALTER TABLE notes DROP COLUMN severity;
ALTER TABLE notes DROP COLUMN directive_name;
ALTER TABLE notes DROP COLUMN source;
