-- Brings back the core notes table (empty) as it was in 1.0.
-- Notes written since 1.1 live in project.db and are not copied back.

CREATE TABLE notes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    content TEXT NOT NULL,
    reference_table TEXT,
    reference_id INTEGER,
    ai_generated BOOLEAN DEFAULT 0,
    created_at DATETIME DEFAULT CURRENT_TIMESTAMP,
    updated_at DATETIME DEFAULT CURRENT_TIMESTAMP
);
