-- Creates the AIFP core database: directives, categories, helper functions, tools and notes.
-- Read-only MCP configuration kept in ~/.aifp/aifp_core.db.

CREATE TABLE IF NOT EXISTS schema_version (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version TEXT NOT NULL,
    updated_at DATETIME DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE IF NOT EXISTS directives (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    level INTEGER DEFAULT NULL,
    parent_directive TEXT REFERENCES directives(name),
    description TEXT,
    workflow JSON NOT NULL,
    md_file_path TEXT,
    roadblocks_json TEXT,
    intent_keywords_json TEXT,
    confidence_threshold REAL DEFAULT 0.5,
    created_at DATETIME DEFAULT CURRENT_TIMESTAMP,
    updated_at DATETIME DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE IF NOT EXISTS categories (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    description TEXT,
    created_at DATETIME DEFAULT CURRENT_TIMESTAMP,
    updated_at DATETIME DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE IF NOT EXISTS directive_categories (
    directive_id INTEGER NOT NULL,
    category_id INTEGER NOT NULL,
    PRIMARY KEY (directive_id, category_id),
    FOREIGN KEY (directive_id) REFERENCES directives(id) ON DELETE CASCADE,
    FOREIGN KEY (category_id) REFERENCES categories(id) ON DELETE CASCADE
);

CREATE TRIGGER IF NOT EXISTS enforce_level_on_fp
BEFORE INSERT ON directives
FOR EACH ROW
WHEN NEW.type = 'fp' AND NEW.level IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'FP directives cannot have a level value.');
END;

CREATE TABLE IF NOT EXISTS directives_interactions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source_directive_id INTEGER NOT NULL REFERENCES directives(id),
    target_directive_id INTEGER NOT NULL REFERENCES directives(id),
    relation_type TEXT NOT NULL CHECK (relation_type IN ('triggers', 'depends_on', 'escalates_to', 'cross_link', 'fp_reference')),
    weight INTEGER DEFAULT 1,
    description TEXT,
    active BOOLEAN DEFAULT 1,
    created_at DATETIME DEFAULT CURRENT_TIMESTAMP,
    updated_at DATETIME DEFAULT CURRENT_TIMESTAMP
);

CREATE INDEX IF NOT EXISTS idx_interactions_source ON directives_interactions (source_directive_id);
CREATE INDEX IF NOT EXISTS idx_interactions_target ON directives_interactions (target_directive_id);
CREATE INDEX IF NOT EXISTS idx_interactions_relation_type ON directives_interactions (relation_type);

CREATE TABLE IF NOT EXISTS helper_functions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    file_path TEXT,
    parameters JSON,
    purpose TEXT,
    error_handling TEXT,
    created_at DATETIME DEFAULT CURRENT_TIMESTAMP,
    updated_at DATETIME DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE IF NOT EXISTS tools (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    maps_to_directive_id INTEGER REFERENCES directives(id),
    description TEXT
);

CREATE TABLE IF NOT EXISTS notes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    content TEXT NOT NULL,
    reference_table TEXT,
    reference_id INTEGER,
    ai_generated BOOLEAN DEFAULT 0,
    created_at DATETIME DEFAULT CURRENT_TIMESTAMP,
    updated_at DATETIME DEFAULT CURRENT_TIMESTAMP
);

INSERT INTO schema_version (id, version) VALUES (1, '1.0');
