-- Notes move to each project's own database: the core database no longer keeps a notes table.
-- Core notes are not copied: the core database is read-only configuration and notes now live in project.db.

DROP TABLE IF EXISTS notes;
