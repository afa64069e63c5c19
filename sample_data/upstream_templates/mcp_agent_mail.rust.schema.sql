-- mcp_agent_mail_rust's storage.sqlite3 (mcp_agent_mail.md, from crates/mcp-agent-mail-db/src/schema.rs):
-- INTEGER microsecond timestamps, the release ledger and inbox_stats.
CREATE TABLE projects (id INTEGER PRIMARY KEY AUTOINCREMENT, slug TEXT NOT NULL UNIQUE,
    human_key TEXT NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE agents (id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id INTEGER NOT NULL REFERENCES projects(id), name TEXT NOT NULL, program TEXT NOT NULL,
    model TEXT NOT NULL, task_description TEXT NOT NULL DEFAULT '', inception_ts INTEGER NOT NULL,
    last_active_ts INTEGER NOT NULL, attachments_policy TEXT NOT NULL DEFAULT 'auto',
    contact_policy TEXT NOT NULL DEFAULT 'auto', reaper_exempt INTEGER NOT NULL DEFAULT 0,
    UNIQUE(project_id, name));
CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id INTEGER NOT NULL REFERENCES projects(id), sender_id INTEGER NOT NULL REFERENCES agents(id),
    thread_id TEXT, subject TEXT NOT NULL, body_md TEXT NOT NULL, importance TEXT NOT NULL DEFAULT 'normal',
    ack_required INTEGER NOT NULL DEFAULT 0, created_ts INTEGER NOT NULL,
    attachments TEXT NOT NULL DEFAULT '[]', recipients_json TEXT NOT NULL DEFAULT '{}');
CREATE INDEX idx_messages_ack_required_id ON messages(ack_required, id);
CREATE TABLE message_recipients (message_id INTEGER NOT NULL REFERENCES messages(id),
    agent_id INTEGER NOT NULL REFERENCES agents(id), kind TEXT NOT NULL DEFAULT 'to', read_ts INTEGER,
    ack_ts INTEGER, PRIMARY KEY(message_id, agent_id));
CREATE INDEX idx_message_recipients_ack_ts_message ON message_recipients(ack_ts, message_id);
CREATE TABLE file_reservations (id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id INTEGER NOT NULL REFERENCES projects(id), agent_id INTEGER NOT NULL REFERENCES agents(id),
    path_pattern TEXT NOT NULL, exclusive INTEGER NOT NULL DEFAULT 1, reason TEXT NOT NULL DEFAULT '',
    created_ts INTEGER NOT NULL, expires_ts INTEGER NOT NULL, released_ts INTEGER);
CREATE TABLE file_reservation_releases (reservation_id INTEGER PRIMARY KEY REFERENCES file_reservations(id),
    released_ts INTEGER NOT NULL);
CREATE TABLE inbox_stats (agent_id INTEGER PRIMARY KEY, total_count INTEGER NOT NULL DEFAULT 0,
    unread_count INTEGER NOT NULL DEFAULT 0, ack_pending_count INTEGER NOT NULL DEFAULT 0,
    last_message_ts INTEGER);
