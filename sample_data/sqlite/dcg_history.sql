-- dcg history.db (schema from dcg.md), rows as the collector tests build them.
PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE commands (id INTEGER PRIMARY KEY AUTOINCREMENT, timestamp TEXT NOT NULL,
    agent_type TEXT NOT NULL, working_dir TEXT NOT NULL, command TEXT NOT NULL, command_hash TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('allow','deny','warn','bypass')), pack_id TEXT, pattern_name TEXT, rule_id TEXT,
    eval_duration_us INTEGER DEFAULT 0, session_id TEXT, exit_code INTEGER,
    parent_command_id INTEGER REFERENCES commands(id), hostname TEXT, allowlist_layer TEXT, bypass_code TEXT);
INSERT INTO commands VALUES(1,'2026-01-19T10:30:00Z','claude_code','/home/dev/proj','git status','sha256:e62b04aadf39df1a47b771265e4ae5c452df3f1903d5c263ab00f088e86102f6','allow',NULL,NULL,NULL,45,'sess-1',0,NULL,'ws-1',NULL,NULL);
INSERT INTO commands VALUES(2,'2026-01-19T10:31:02.123456Z','claude_code','/home/dev/proj','git reset --hard','sha256:4d5136ce648d45dd2f32cdd81c1a43ba8d37f8e90c0045e6a9e6f3dd5b438e53','deny','core.git','reset-hard','core.git:reset-hard',120,'sess-1',NULL,NULL,'ws-1',NULL,NULL);
INSERT INTO commands VALUES(3,'2026-01-19T10:32:00+00:00','codex','/home/dev/web','rm -rf ./build','sha256:83686d6301f2173b6c8dc1af9a53da1c300502f9b9d0ac7b8c7ee202b04c1992','warn','core.filesystem','rm-rf','core.filesystem:rm-rf',80,'sess-2',0,NULL,'ws-1',NULL,NULL);
INSERT INTO commands VALUES(4,'2026-01-19T10:33:00Z','codex','/home/dev/web','psql -c ''DROP TABLE users''','sha256:5d09586ad42f5dbd1328259631e765d24e0ca9767d4a6a536c66add37dca104b','bypass','database.postgresql','drop-table','database.postgresql:drop-table',230,'sess-2',0,3,'ws-1','project','ABC123');
INSERT INTO commands VALUES(5,'2026-01-19T10:34:00Z','gemini','/home/dev/web','git push --force origin main','sha256:d20c97f7d0825f2f93cb4052cd7e62799a2f731d5cecc35b5e6e21910362d940','deny','core.git','push-force','core.git:push-force',95,NULL,1,NULL,'ws-2',NULL,NULL);
PRAGMA writable_schema=ON;
INSERT INTO sqlite_schema(type,name,tbl_name,rootpage,sql)VALUES('table','commands_fts','commands_fts',0,'CREATE VIRTUAL TABLE commands_fts USING fts5(command, content=''commands'', content_rowid=''id'')');
CREATE TABLE IF NOT EXISTS 'commands_fts_data'(id INTEGER PRIMARY KEY, block BLOB);
INSERT INTO commands_fts_data VALUES(1,X'');
INSERT INTO commands_fts_data VALUES(10,X'00000000000000');
CREATE TABLE IF NOT EXISTS 'commands_fts_idx'(segid, term, pgno, PRIMARY KEY(segid, term)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS 'commands_fts_docsize'(id INTEGER PRIMARY KEY, sz BLOB);
CREATE TABLE IF NOT EXISTS 'commands_fts_config'(k PRIMARY KEY, v) WITHOUT ROWID;
INSERT INTO commands_fts_config VALUES('version',4);
CREATE TABLE stats_cache (key TEXT PRIMARY KEY, value INTEGER, updated_at TEXT);
CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at TEXT NOT NULL, description TEXT,
    last_prune_at TEXT);
INSERT INTO schema_version VALUES(5,'2026-01-01T00:00:00Z','v',NULL);
DELETE FROM sqlite_sequence;
INSERT INTO sqlite_sequence VALUES('commands',5);
CREATE INDEX idx_commands_timestamp ON commands(timestamp);
CREATE INDEX idx_commands_outcome_timestamp ON commands(outcome, timestamp);
CREATE INDEX idx_commands_pack_outcome ON commands(pack_id, outcome);
PRAGMA writable_schema=OFF;
COMMIT;
