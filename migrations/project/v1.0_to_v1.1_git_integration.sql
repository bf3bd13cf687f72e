-- Git integration: records the last known git commit and tracks work branches and merges.

ALTER TABLE project ADD COLUMN last_known_git_hash TEXT;
ALTER TABLE project ADD COLUMN last_git_sync DATETIME;

CREATE TABLE work_branches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    branch_name TEXT UNIQUE NOT NULL,
    user_name TEXT NOT NULL,
    purpose TEXT NOT NULL,
    status TEXT DEFAULT 'active',
    created_from TEXT DEFAULT 'main',
    created_at DATETIME DEFAULT CURRENT_TIMESTAMP,
    merged_at DATETIME NULL,
    merge_conflicts_count INTEGER DEFAULT 0,
    merge_resolution_strategy TEXT,
    metadata_json TEXT
);

CREATE TABLE merge_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source_branch TEXT NOT NULL,
    target_branch TEXT DEFAULT 'main',
    merge_timestamp DATETIME DEFAULT CURRENT_TIMESTAMP,
    conflicts_detected INTEGER DEFAULT 0,
    conflicts_auto_resolved INTEGER DEFAULT 0,
    conflicts_manual_resolved INTEGER DEFAULT 0,
    resolution_details TEXT,
    merged_by TEXT,
    merge_commit_hash TEXT
);

CREATE INDEX idx_work_branches_user ON work_branches (user_name);
CREATE INDEX idx_work_branches_status ON work_branches (status);
CREATE INDEX idx_merge_history_timestamp ON merge_history (merge_timestamp);
CREATE INDEX idx_merge_history_source ON merge_history (source_branch);
