-- mcp_agent_mail rust variant (schema from mcp_agent_mail.md), rows as the collector tests build them.
PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE projects (id INTEGER PRIMARY KEY AUTOINCREMENT, slug TEXT NOT NULL UNIQUE,
    human_key TEXT NOT NULL, created_at INTEGER NOT NULL);
INSERT INTO projects VALUES(1,'vibe-cockpit','/data/projects/vibe_cockpit',1770207191079199);
INSERT INTO projects VALUES(2,'ntm','/data/projects/ntm',1770207191079199);
CREATE TABLE agents (id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id INTEGER NOT NULL REFERENCES projects(id), name TEXT NOT NULL, program TEXT NOT NULL,
    model TEXT NOT NULL, task_description TEXT NOT NULL DEFAULT '', inception_ts INTEGER NOT NULL,
    last_active_ts INTEGER NOT NULL, attachments_policy TEXT NOT NULL DEFAULT 'auto',
    contact_policy TEXT NOT NULL DEFAULT 'auto', reaper_exempt INTEGER NOT NULL DEFAULT 0,
    UNIQUE(project_id, name));
INSERT INTO agents VALUES(1,1,'GreenCastle','claude-code','opus-4.1','',1770239591079199,1770243791079199,'auto','auto',0);
INSERT INTO agents VALUES(2,1,'BlueLake','codex-cli','gpt-5-codex','',1770240191079199,1770243911079199,'auto','auto',0);
INSERT INTO agents VALUES(3,2,'RedStone','gemini-cli','gemini-2.5-pro','',1770240791079199,1770243851079199,'auto','auto',0);
CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id INTEGER NOT NULL REFERENCES projects(id), sender_id INTEGER NOT NULL REFERENCES agents(id),
    thread_id TEXT, subject TEXT NOT NULL, body_md TEXT NOT NULL, importance TEXT NOT NULL DEFAULT 'normal',
    ack_required INTEGER NOT NULL DEFAULT 0, created_ts INTEGER NOT NULL,
    attachments TEXT NOT NULL DEFAULT '[]', recipients_json TEXT NOT NULL DEFAULT '{}');
INSERT INTO messages VALUES(1,1,1,'FEAT-42','Starting auth refactor',replace('## Starting auth refactor\n\nDetails for message 1.','\n',char(10)),'normal',0,1770243191079199,'[]','{"to":["BlueLake"]}');
INSERT INTO messages VALUES(2,1,2,'FEAT-42','Re: Starting auth refactor',replace('## Re: Starting auth refactor\n\nDetails for message 2.','\n',char(10)),'high',1,1770243491079199,'[]','{}');
INSERT INTO messages VALUES(3,1,1,NULL,'Build broken on main',replace('## Build broken on main\n\nDetails for message 3.','\n',char(10)),'urgent',1,1770243791079199,'[{"type":"file","path":"logs/build.txt"}]','{}');
CREATE TABLE message_recipients (message_id INTEGER NOT NULL REFERENCES messages(id),
    agent_id INTEGER NOT NULL REFERENCES agents(id), kind TEXT NOT NULL DEFAULT 'to', read_ts INTEGER,
    ack_ts INTEGER, PRIMARY KEY(message_id, agent_id));
INSERT INTO message_recipients VALUES(1,2,'to',1770243251079199,NULL);
INSERT INTO message_recipients VALUES(1,3,'cc',NULL,NULL);
INSERT INTO message_recipients VALUES(2,1,'to',1770243551079199,1770243611079199);
INSERT INTO message_recipients VALUES(3,2,'to',NULL,NULL);
INSERT INTO message_recipients VALUES(3,3,'to',NULL,NULL);
CREATE TABLE file_reservations (id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id INTEGER NOT NULL REFERENCES projects(id), agent_id INTEGER NOT NULL REFERENCES agents(id),
    path_pattern TEXT NOT NULL, exclusive INTEGER NOT NULL DEFAULT 1, reason TEXT NOT NULL DEFAULT '',
    created_ts INTEGER NOT NULL, expires_ts INTEGER NOT NULL, released_ts INTEGER);
INSERT INTO file_reservations VALUES(1,1,1,'src/auth/**',1,'auth refactor',1770243191079199,1770246791079199,NULL);
INSERT INTO file_reservations VALUES(2,1,2,'docs/*.md',0,'',1770243671079199,1770245471079199,NULL);
CREATE TABLE file_reservation_releases (reservation_id INTEGER PRIMARY KEY REFERENCES file_reservations(id),
    released_ts INTEGER NOT NULL);
INSERT INTO file_reservation_releases VALUES(2,1770243731079199);
CREATE TABLE inbox_stats (agent_id INTEGER PRIMARY KEY, total_count INTEGER NOT NULL DEFAULT 0,
    unread_count INTEGER NOT NULL DEFAULT 0, ack_pending_count INTEGER NOT NULL DEFAULT 0,
    last_message_ts INTEGER);
PRAGMA writable_schema=ON;
INSERT INTO sqlite_schema(type,name,tbl_name,rootpage,sql)VALUES('table','fts_messages','fts_messages',0,'CREATE VIRTUAL TABLE fts_messages USING fts5(message_id UNINDEXED, subject, body,
    tokenize=''porter unicode61 remove_diacritics 2'', prefix=''2 3'')');
CREATE TABLE IF NOT EXISTS 'fts_messages_data'(id INTEGER PRIMARY KEY, block BLOB);
INSERT INTO fts_messages_data VALUES(1,X'');
INSERT INTO fts_messages_data VALUES(10,X'00000000000000');
CREATE TABLE IF NOT EXISTS 'fts_messages_idx'(segid, term, pgno, PRIMARY KEY(segid, term)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS 'fts_messages_content'(id INTEGER PRIMARY KEY, c0, c1, c2);
CREATE TABLE IF NOT EXISTS 'fts_messages_docsize'(id INTEGER PRIMARY KEY, sz BLOB);
CREATE TABLE IF NOT EXISTS 'fts_messages_config'(k PRIMARY KEY, v) WITHOUT ROWID;
INSERT INTO fts_messages_config VALUES('version',4);
DELETE FROM sqlite_sequence;
INSERT INTO sqlite_sequence VALUES('projects',2);
INSERT INTO sqlite_sequence VALUES('agents',3);
INSERT INTO sqlite_sequence VALUES('messages',3);
INSERT INTO sqlite_sequence VALUES('file_reservations',2);
CREATE INDEX idx_messages_ack_required_id ON messages(ack_required, id);
CREATE INDEX idx_message_recipients_ack_ts_message ON message_recipients(ack_ts, message_id);
PRAGMA writable_schema=OFF;
COMMIT;
