-- Tool availability per machine (`command -v` plus a cheap version), one row per tool per check.
-- Kept as history rather than overwritten, so "when did this tool appear or vanish" is a query.
-- `present` false means the machine answered and the tool is not on PATH; a tool the machine did
-- not answer for (timeout, truncated output) gets no row at all.

CREATE TABLE machine_tool_capabilities (
    machine_id      VARCHAR NOT NULL,
    tool            VARCHAR NOT NULL,
    checked_at      TIMESTAMPTZ NOT NULL,
    source          VARCHAR NOT NULL,
    source_version  VARCHAR,
    schema_version  INTEGER NOT NULL,
    present         BOOLEAN NOT NULL,
    path            VARCHAR,
    version         VARCHAR,
    PRIMARY KEY (machine_id, tool, checked_at)
);
