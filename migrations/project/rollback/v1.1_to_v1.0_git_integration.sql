-- Removes git integration: drops work branch and merge tracking and the project's last known git commit.
-- Work branch and merge records are deleted.

DROP INDEX idx_merge_history_source;
DROP INDEX idx_merge_history_timestamp;
DROP INDEX idx_work_branches_status;
DROP INDEX idx_work_branches_user;

DROP TABLE merge_history;
DROP TABLE work_branches;

ALTER TABLE project DROP COLUMN last_git_sync;
ALTER TABLE project DROP COLUMN last_known_git_hash;
