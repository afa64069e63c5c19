-- mcp_agent_mail python variant (schema from mcp_agent_mail.md), rows as the collector tests build them.
PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE projects (id INTEGER NOT NULL PRIMARY KEY, slug VARCHAR(255) NOT NULL UNIQUE,
    human_key VARCHAR(255) NOT NULL, created_at DATETIME NOT NULL, archived_at DATETIME);
INSERT INTO projects VALUES(1,'vibe-cockpit','/data/projects/vibe_cockpit','2026-02-04 12:13:11.079199',NULL);
INSERT INTO projects VALUES(2,'ntm','/data/projects/ntm','2026-02-04 12:13:11.079199',NULL);
CREATE TABLE agents (id INTEGER NOT NULL PRIMARY KEY, project_id INTEGER NOT NULL REFERENCES projects (id),
    name VARCHAR(128) NOT NULL, program VARCHAR(128) NOT NULL, model VARCHAR(128) NOT NULL,
    task_description VARCHAR(2048) NOT NULL DEFAULT '', inception_ts DATETIME NOT NULL,
    last_active_ts DATETIME NOT NULL, attachments_policy VARCHAR(16) NOT NULL DEFAULT 'auto',
    contact_policy VARCHAR(16) NOT NULL DEFAULT 'auto', retired_at DATETIME, UNIQUE (project_id, name));
INSERT INTO agents VALUES(1,1,'GreenCastle','claude-code','opus-4.1','','2026-02-04 21:13:11.079199','2026-02-04 22:23:11.079199','auto','auto',NULL);
INSERT INTO agents VALUES(2,1,'BlueLake','codex-cli','gpt-5-codex','','2026-02-04 21:23:11.079199','2026-02-04 22:25:11.079199','auto','auto',NULL);
INSERT INTO agents VALUES(3,2,'RedStone','gemini-cli','gemini-2.5-pro','','2026-02-04 21:33:11.079199','2026-02-04 22:24:11.079199','auto','auto',NULL);
CREATE TABLE messages (id INTEGER NOT NULL PRIMARY KEY, project_id INTEGER NOT NULL REFERENCES projects (id),
    sender_id INTEGER NOT NULL REFERENCES agents (id), thread_id VARCHAR(128), subject VARCHAR(512) NOT NULL,
    body_md TEXT NOT NULL, importance VARCHAR(16) NOT NULL DEFAULT 'normal', ack_required BOOLEAN NOT NULL,
    created_ts DATETIME NOT NULL, attachments JSON NOT NULL DEFAULT '[]', topic VARCHAR(64));
INSERT INTO messages VALUES(1,1,1,'FEAT-42','Starting auth refactor',replace('## Starting auth refactor\n\nDetails for message 1.','\n',char(10)),'normal',0,'2026-02-04 22:13:11.079199','[]','auth');
INSERT INTO messages VALUES(2,1,2,'FEAT-42','Re: Starting auth refactor',replace('## Re: Starting auth refactor\n\nDetails for message 2.','\n',char(10)),'high',1,'2026-02-04 22:18:11.079199','[]','auth');
INSERT INTO messages VALUES(3,1,1,NULL,'Build broken on main',replace('## Build broken on main\n\nDetails for message 3.','\n',char(10)),'urgent',1,'2026-02-04 22:23:11.079199','[{"type":"file","path":"logs/build.txt"}]',NULL);
CREATE TABLE message_recipients (message_id INTEGER NOT NULL REFERENCES messages (id),
    agent_id INTEGER NOT NULL REFERENCES agents (id), kind VARCHAR(8) NOT NULL DEFAULT 'to',
    read_ts DATETIME, ack_ts DATETIME, PRIMARY KEY (message_id, agent_id));
INSERT INTO message_recipients VALUES(1,2,'to','2026-02-04 22:14:11.079199',NULL);
INSERT INTO message_recipients VALUES(1,3,'cc',NULL,NULL);
INSERT INTO message_recipients VALUES(2,1,'to','2026-02-04 22:19:11.079199','2026-02-04 22:20:11.079199');
INSERT INTO message_recipients VALUES(3,2,'to',NULL,NULL);
INSERT INTO message_recipients VALUES(3,3,'to',NULL,NULL);
CREATE TABLE file_reservations (id INTEGER NOT NULL PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects (id), agent_id INTEGER NOT NULL REFERENCES agents (id),
    path_pattern VARCHAR(512) NOT NULL, exclusive BOOLEAN NOT NULL DEFAULT 1,
    reason VARCHAR(512) NOT NULL DEFAULT '', created_ts DATETIME NOT NULL, expires_ts DATETIME NOT NULL,
    released_ts DATETIME);
INSERT INTO file_reservations VALUES(1,1,1,'src/auth/**',1,'auth refactor','2026-02-04 22:13:11.079199','2026-02-04 23:13:11.079199',NULL);
INSERT INTO file_reservations VALUES(2,1,2,'docs/*.md',0,'','2026-02-04 22:21:11.079199','2026-02-04 22:51:11.079199','2026-02-04 22:22:11.079199');
PRAGMA writable_schema=ON;
INSERT INTO sqlite_schema(type,name,tbl_name,rootpage,sql)VALUES('table','fts_messages','fts_messages',0,'CREATE VIRTUAL TABLE fts_messages USING fts5(message_id UNINDEXED, subject, body)');
CREATE TABLE IF NOT EXISTS 'fts_messages_data'(id INTEGER PRIMARY KEY, block BLOB);
INSERT INTO fts_messages_data VALUES(1,X'03000b17');
INSERT INTO fts_messages_data VALUES(10,X'000000000103030003010101020101030101');
INSERT INTO fts_messages_data VALUES(137438953473,X'000000640230310106010208010461757468010c010103010203010764657461696c7301060102050103666f72010601020601076d657373616765010601020701087265666163746f72010c01010401020401087374617274696e67010c01010201020204080e0e0a0e12');
INSERT INTO fts_messages_data VALUES(274877906945,X'0000006e0230320206010209010461757468020c010104010204010764657461696c7302060102060103666f72020601020701076d657373616765020601020801027265020c0101020102020306666163746f72020c01010501020501087374617274696e67020c01010301020304080e0e0a0e0c10');
INSERT INTO fts_messages_data VALUES(412316860417,X'000000690230330306010209010662726f6b656e030c010103010203020475696c64030c010102010202010764657461696c7303060102060103666f72030601020701046d61696e030c0101050102050206657373616765030601020801026f6e030c0101040102040408100e0e0a0e0d');
CREATE TABLE IF NOT EXISTS 'fts_messages_idx'(segid, term, pgno, PRIMARY KEY(segid, term)) WITHOUT ROWID;
INSERT INTO fts_messages_idx VALUES(1,X'',2);
INSERT INTO fts_messages_idx VALUES(2,X'',2);
INSERT INTO fts_messages_idx VALUES(3,X'',2);
CREATE TABLE IF NOT EXISTS 'fts_messages_content'(id INTEGER PRIMARY KEY, c0, c1, c2);
INSERT INTO fts_messages_content VALUES(1,1,'Starting auth refactor',replace('## Starting auth refactor\n\nDetails for message 1.','\n',char(10)));
INSERT INTO fts_messages_content VALUES(2,2,'Re: Starting auth refactor',replace('## Re: Starting auth refactor\n\nDetails for message 2.','\n',char(10)));
INSERT INTO fts_messages_content VALUES(3,3,'Build broken on main',replace('## Build broken on main\n\nDetails for message 3.','\n',char(10)));
CREATE TABLE IF NOT EXISTS 'fts_messages_docsize'(id INTEGER PRIMARY KEY, sz BLOB);
INSERT INTO fts_messages_docsize VALUES(1,X'000307');
INSERT INTO fts_messages_docsize VALUES(2,X'000408');
INSERT INTO fts_messages_docsize VALUES(3,X'000408');
CREATE TABLE IF NOT EXISTS 'fts_messages_config'(k PRIMARY KEY, v) WITHOUT ROWID;
INSERT INTO fts_messages_config VALUES('version',4);
CREATE INDEX ix_messages_created_ts ON messages (created_ts);
CREATE TRIGGER fts_messages_ai AFTER INSERT ON messages BEGIN
    INSERT INTO fts_messages(rowid, message_id, subject, body)
    VALUES (new.id, new.id, new.subject, new.body_md);
END;
PRAGMA writable_schema=OFF;
COMMIT;
