-- The kernel's OOM-kill counter per system sample: `oom_kill` of /proc/vmstat (Linux >= 4.13), the
-- number of processes the OOM killer has killed since boot. A counter, not a rate: the alert rule
-- `oom_kills` (kind rate) turns it into kills per hour, and a reboot resets it to 0.
-- Filled by collectors/system.py (local) and the basic probe (remote). NULL when the machine's
-- kernel does not expose the line (or /proc/vmstat is unreadable): "unknown", never 0.
ALTER TABLE sys_samples ADD COLUMN oom_kill_total BIGINT;
