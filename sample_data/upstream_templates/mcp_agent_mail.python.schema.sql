-- mcp_agent_mail (Python) storage.sqlite3 as SQLModel creates it (mcp_agent_mail.md, models.py / db.py):
-- DATETIME columns hold naive-UTC ISO text; `topic` was added by ALTER TABLE.
CREATE TABLE projects (id INTEGER NOT NULL PRIMARY KEY, slug VARCHAR(255) NOT NULL UNIQUE,
    human_key VARCHAR(255) NOT NULL, created_at DATETIME NOT NULL, archived_at DATETIME);
CREATE TABLE agents (id INTEGER NOT NULL PRIMARY KEY, project_id INTEGER NOT NULL REFERENCES projects (id),
    name VARCHAR(128) NOT NULL, program VARCHAR(128) NOT NULL, model VARCHAR(128) NOT NULL,
    task_description VARCHAR(2048) NOT NULL DEFAULT '', inception_ts DATETIME NOT NULL,
    last_active_ts DATETIME NOT NULL, attachments_policy VARCHAR(16) NOT NULL DEFAULT 'auto',
    contact_policy VARCHAR(16) NOT NULL DEFAULT 'auto', retired_at DATETIME, UNIQUE (project_id, name));
CREATE TABLE messages (id INTEGER NOT NULL PRIMARY KEY, project_id INTEGER NOT NULL REFERENCES projects (id),
    sender_id INTEGER NOT NULL REFERENCES agents (id), thread_id VARCHAR(128), subject VARCHAR(512) NOT NULL,
    body_md TEXT NOT NULL, importance VARCHAR(16) NOT NULL DEFAULT 'normal', ack_required BOOLEAN NOT NULL,
    created_ts DATETIME NOT NULL, attachments JSON NOT NULL DEFAULT '[]', topic VARCHAR(64));
CREATE INDEX ix_messages_created_ts ON messages (created_ts);
CREATE TABLE message_recipients (message_id INTEGER NOT NULL REFERENCES messages (id),
    agent_id INTEGER NOT NULL REFERENCES agents (id), kind VARCHAR(8) NOT NULL DEFAULT 'to',
    read_ts DATETIME, ack_ts DATETIME, PRIMARY KEY (message_id, agent_id));
CREATE TABLE file_reservations (id INTEGER NOT NULL PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects (id), agent_id INTEGER NOT NULL REFERENCES agents (id),
    path_pattern VARCHAR(512) NOT NULL, exclusive BOOLEAN NOT NULL DEFAULT 1,
    reason VARCHAR(512) NOT NULL DEFAULT '', created_ts DATETIME NOT NULL, expires_ts DATETIME NOT NULL,
    released_ts DATETIME);
