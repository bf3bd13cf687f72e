-- Creates the user directives database: user directives, their executions, dependencies, implementations, relationships, source files and logging settings.

CREATE TABLE IF NOT EXISTS schema_version (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version TEXT NOT NULL,
    updated_at DATETIME DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE IF NOT EXISTS user_directives (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    source_file TEXT NOT NULL,
    source_format TEXT NOT NULL CHECK (source_format IN ('yaml', 'json', 'txt')),
    domain TEXT,
    description TEXT,
    raw_content TEXT NOT NULL,
    validated_content JSON NOT NULL,
    trigger_type TEXT NOT NULL CHECK (trigger_type IN ('time', 'event', 'condition', 'manual')),
    trigger_config JSON NOT NULL,
    action_type TEXT NOT NULL,
    action_config JSON NOT NULL,
    status TEXT DEFAULT 'pending_validation' CHECK (status IN ('pending_validation', 'validated', 'implementing', 'implemented', 'active', 'paused', 'error', 'deprecated')),
    implementation_status TEXT DEFAULT 'not_started' CHECK (implementation_status IN ('not_started', 'in_progress', 'completed', 'failed')),
    implementation_file_path TEXT,
    validation_questions JSON,
    validation_answers JSON,
    validated_at DATETIME,
    validated_by TEXT DEFAULT 'ai',
    approved BOOLEAN DEFAULT 0,
    approved_at DATETIME,
    priority INTEGER DEFAULT 0,
    created_at DATETIME DEFAULT CURRENT_TIMESTAMP,
    updated_at DATETIME DEFAULT CURRENT_TIMESTAMP,
    activated_at DATETIME,
    last_modified_at DATETIME
);

CREATE TABLE IF NOT EXISTS directive_executions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    directive_id INTEGER NOT NULL REFERENCES user_directives(id) ON DELETE CASCADE,
    last_execution_time DATETIME,
    next_scheduled_time DATETIME,
    total_executions INTEGER DEFAULT 0,
    success_count INTEGER DEFAULT 0,
    error_count INTEGER DEFAULT 0,
    last_error_time DATETIME,
    last_error_type TEXT,
    last_error_message TEXT,
    avg_execution_time_ms REAL,
    max_execution_time_ms REAL,
    created_at DATETIME DEFAULT CURRENT_TIMESTAMP,
    updated_at DATETIME DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE IF NOT EXISTS directive_dependencies (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    directive_id INTEGER NOT NULL REFERENCES user_directives(id) ON DELETE CASCADE,
    dependency_type TEXT NOT NULL CHECK (dependency_type IN ('python_package', 'system_package', 'api_service', 'file', 'environment_variable', 'hardware')),
    dependency_name TEXT NOT NULL,
    dependency_version TEXT,
    status TEXT DEFAULT 'not_installed' CHECK (status IN ('not_installed', 'pending_confirmation', 'installing', 'installed', 'failed', 'not_available')),
    install_command TEXT,
    user_confirmed BOOLEAN DEFAULT 0,
    confirmed_at DATETIME,
    installed_at DATETIME,
    required BOOLEAN DEFAULT 1,
    description TEXT,
    created_at DATETIME DEFAULT CURRENT_TIMESTAMP,
    updated_at DATETIME DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE IF NOT EXISTS directive_implementations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    directive_id INTEGER NOT NULL REFERENCES user_directives(id) ON DELETE CASCADE,
    implementation_type TEXT NOT NULL CHECK (implementation_type IN ('event_handler', 'scheduler', 'service', 'function', 'script')),
    file_path TEXT NOT NULL,
    function_name TEXT,
    language TEXT DEFAULT 'python',
    framework TEXT,
    entry_point TEXT,
    deployed BOOLEAN DEFAULT 0,
    deployed_at DATETIME,
    process_id INTEGER,
    file_checksum TEXT,
    created_at DATETIME DEFAULT CURRENT_TIMESTAMP,
    updated_at DATETIME DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE IF NOT EXISTS directive_relationships (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source_directive_id INTEGER NOT NULL REFERENCES user_directives(id) ON DELETE CASCADE,
    target_directive_id INTEGER NOT NULL REFERENCES user_directives(id) ON DELETE CASCADE,
    relationship_type TEXT NOT NULL CHECK (relationship_type IN ('depends_on', 'triggers', 'conflicts_with', 'enhances')),
    description TEXT,
    active BOOLEAN DEFAULT 1,
    created_at DATETIME DEFAULT CURRENT_TIMESTAMP,
    UNIQUE (source_directive_id, target_directive_id, relationship_type)
);

CREATE TABLE IF NOT EXISTS source_files (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    file_path TEXT NOT NULL UNIQUE,
    file_format TEXT NOT NULL CHECK (file_format IN ('yaml', 'json', 'txt')),
    file_checksum TEXT NOT NULL,
    last_parsed_at DATETIME,
    parse_status TEXT DEFAULT 'not_parsed' CHECK (parse_status IN ('not_parsed', 'parsing', 'parsed_successfully', 'parse_error')),
    parse_error_message TEXT,
    directive_count INTEGER DEFAULT 0,
    active_directive_count INTEGER DEFAULT 0,
    created_at DATETIME DEFAULT CURRENT_TIMESTAMP,
    updated_at DATETIME DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE IF NOT EXISTS logging_config (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    execution_logs_enabled BOOLEAN DEFAULT 1,
    execution_log_rotation TEXT DEFAULT 'daily' CHECK (execution_log_rotation IN ('daily', 'weekly', 'size')),
    execution_log_retention_days INTEGER DEFAULT 30,
    execution_log_compress_after_days INTEGER DEFAULT 7,
    execution_log_max_size_mb INTEGER DEFAULT 100,
    error_logs_enabled BOOLEAN DEFAULT 1,
    error_log_rotation TEXT DEFAULT 'size' CHECK (error_log_rotation IN ('daily', 'weekly', 'size')),
    error_log_retention_days INTEGER DEFAULT 90,
    error_log_max_size_mb INTEGER DEFAULT 10,
    error_log_format TEXT DEFAULT 'json' CHECK (error_log_format IN ('json', 'text')),
    store_execution_statistics BOOLEAN DEFAULT 1,
    store_last_error_only BOOLEAN DEFAULT 1,
    store_execution_history BOOLEAN DEFAULT 0,
    execution_log_dir TEXT DEFAULT '.aifp-project/logs/execution/',
    error_log_dir TEXT DEFAULT '.aifp-project/logs/errors/',
    lifecycle_log_path TEXT DEFAULT '.aifp-project/logs/user-directives.log',
    updated_at DATETIME DEFAULT CURRENT_TIMESTAMP
);

INSERT INTO logging_config (id) VALUES (1);

CREATE INDEX IF NOT EXISTS idx_user_directives_status ON user_directives (status);
CREATE INDEX IF NOT EXISTS idx_user_directives_domain ON user_directives (domain);
CREATE INDEX IF NOT EXISTS idx_user_directives_trigger_type ON user_directives (trigger_type);
CREATE INDEX IF NOT EXISTS idx_user_directives_source_file ON user_directives (source_file);
CREATE INDEX IF NOT EXISTS idx_directive_executions_directive_id ON directive_executions (directive_id);
CREATE INDEX IF NOT EXISTS idx_directive_executions_last_execution_time ON directive_executions (last_execution_time);
CREATE INDEX IF NOT EXISTS idx_directive_dependencies_directive_id ON directive_dependencies (directive_id);
CREATE INDEX IF NOT EXISTS idx_directive_dependencies_status ON directive_dependencies (status);
CREATE INDEX IF NOT EXISTS idx_directive_implementations_directive_id ON directive_implementations (directive_id);
CREATE INDEX IF NOT EXISTS idx_directive_implementations_implementation_type ON directive_implementations (implementation_type);
CREATE INDEX IF NOT EXISTS idx_source_files_file_checksum ON source_files (file_checksum);

CREATE TRIGGER IF NOT EXISTS update_user_directives_timestamp
AFTER UPDATE ON user_directives
FOR EACH ROW
BEGIN
    UPDATE user_directives SET updated_at = CURRENT_TIMESTAMP WHERE id = OLD.id;
END;

CREATE TRIGGER IF NOT EXISTS update_directive_executions_timestamp
AFTER UPDATE ON directive_executions
FOR EACH ROW
BEGIN
    UPDATE directive_executions SET updated_at = CURRENT_TIMESTAMP WHERE id = OLD.id;
END;

CREATE TRIGGER IF NOT EXISTS update_directive_dependencies_timestamp
AFTER UPDATE ON directive_dependencies
FOR EACH ROW
BEGIN
    UPDATE directive_dependencies SET updated_at = CURRENT_TIMESTAMP WHERE id = OLD.id;
END;

CREATE TRIGGER IF NOT EXISTS update_directive_implementations_timestamp
AFTER UPDATE ON directive_implementations
FOR EACH ROW
BEGIN
    UPDATE directive_implementations SET updated_at = CURRENT_TIMESTAMP WHERE id = OLD.id;
END;

CREATE TRIGGER IF NOT EXISTS update_source_files_timestamp
AFTER UPDATE ON source_files
FOR EACH ROW
BEGIN
    UPDATE source_files SET updated_at = CURRENT_TIMESTAMP WHERE id = OLD.id;
END;

INSERT INTO schema_version (id, version) VALUES (1, '1.0');
