-- dcg's ~/.config/dcg/history.db, schema version 5 (dcg.md §3, from src/history/schema.rs).
CREATE TABLE commands (id INTEGER PRIMARY KEY AUTOINCREMENT, timestamp TEXT NOT NULL,
    agent_type TEXT NOT NULL, working_dir TEXT NOT NULL, command TEXT NOT NULL, command_hash TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('allow','deny','warn','bypass')), pack_id TEXT, pattern_name TEXT,
    rule_id TEXT, eval_duration_us INTEGER DEFAULT 0, session_id TEXT, exit_code INTEGER,
    parent_command_id INTEGER REFERENCES commands(id), hostname TEXT, allowlist_layer TEXT, bypass_code TEXT);
CREATE INDEX idx_commands_timestamp ON commands(timestamp);
CREATE INDEX idx_commands_outcome ON commands(outcome);
CREATE INDEX idx_commands_outcome_timestamp ON commands(outcome, timestamp);
CREATE INDEX idx_commands_pack_outcome ON commands(pack_id, outcome);
CREATE TABLE stats_cache (key TEXT PRIMARY KEY, value INTEGER, updated_at TEXT);
CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at TEXT NOT NULL, description TEXT,
    last_prune_at TEXT);
