-- title: Backlog
-- title.id: Tiket terbuka
-- description: Open tickets (new, open, pending) by team, priority and status, how long they have waited, the trend over eight weeks, and the oldest tickets.
-- description.id: Tiket terbuka (baru, terbuka, menunggu) per tim, prioritas dan status, lama menunggu, tren delapan minggu, dan tiket tertua.
-- param: team text = ''     Only this team (empty: all teams)
-- param: channel text = ''  Only this channel (empty: all channels)
-- param: oldest int = 15    How many of the oldest tickets to list
--
-- Definitions (README "Report definitions"):
-- open at a moment  the ticket's status at that moment was new, open or pending, from its
--                   status history (a ticket resolved and later reopened was not open in
--                   between); its team is its team at that moment.
-- Age is counted from creation to now; buckets are [0, 1), [1, 3), [3, 7) and 7+ days.
-- Tickets tagged with one of `reports: exclude_tags` (spam, automatic mail) are left out.

-- section: setup
-- kind: setup
-- The open tickets now (one scan of tickets; subjects are left out: the widest column; the
-- excluded tickets are those of `excluded_tickets`, which reading every ticket's tags again
-- would cost more than).
CREATE OR REPLACE TEMP TABLE backlog_t AS
SELECT number, team, assignee, priority, status, created_at
FROM tickets
WHERE status IN ('new', 'open', 'pending') AND number NOT IN (SELECT ticket FROM excluded_tickets)
  AND ($team = '' OR team = $team) AND ($channel = '' OR channel = $channel);

-- section: setup_history
-- kind: setup
-- The backlog at a moment T = the open tickets now, minus the changes since T that made a
-- ticket count as open (for the team), plus those that made one stop counting: so only the
-- last weeks of the history are read.
CREATE OR REPLACE TEMP TABLE backlog_d AS
SELECT ts, (CASE WHEN was_open AND ($team = '' OR prev_team = $team) THEN 1 ELSE 0 END)
         - (CASE WHEN is_open AND ($team = '' OR team = $team) THEN 1 ELSE 0 END) AS delta
FROM backlog_changes
WHERE ts >= utc_ts(date_trunc('week', local_ts($now)) - INTERVAL 42 DAY)
  AND ticket NOT IN (SELECT ticket FROM excluded_tickets)
  -- (with no channel asked for, the subquery is empty and costs nothing)
  AND ticket NOT IN (SELECT number FROM tickets WHERE $channel <> '' AND channel IS DISTINCT FROM $channel);

-- section: summary
-- title: Backlog now
-- title.id: Tiket terbuka saat ini
-- kind: metrics
SELECT * FROM (VALUES
    ('open_tickets', (SELECT count(*) FROM backlog_t),
     (SELECT count(*) FROM backlog_t) + (SELECT coalesce(sum(delta), 0) FROM backlog_d
                                         WHERE ts >= $now - INTERVAL 7 DAY), 'down'),
    ('unassigned', (SELECT count(*) FROM backlog_t WHERE assignee IS NULL), NULL, 'down'),
    ('waiting_7d', (SELECT count(*) FROM backlog_t WHERE created_at < $now - INTERVAL 7 DAY), NULL, 'down')
) AS m(metric, value, previous, good);

-- section: by_team
-- title: Open tickets by team and age
-- title.id: Tiket terbuka per tim dan umur
-- chart: hbar x=team y=open_tickets
SELECT coalesce(team, '–') AS team,
       count(*) AS open_tickets,
       count(*) FILTER (WHERE priority IN ('urgent', 'high')) AS urgent_high,
       count(*) FILTER (WHERE created_at > $now - INTERVAL 1 DAY) AS lt_1d,
       count(*) FILTER (WHERE created_at <= $now - INTERVAL 1 DAY AND created_at > $now - INTERVAL 3 DAY) AS d1_3,
       count(*) FILTER (WHERE created_at <= $now - INTERVAL 3 DAY AND created_at > $now - INTERVAL 7 DAY) AS d3_7,
       count(*) FILTER (WHERE created_at <= $now - INTERVAL 7 DAY) AS gt_7d
FROM backlog_t
GROUP BY ALL
ORDER BY open_tickets DESC, team;

-- section: by_priority
-- title: Open tickets by priority and age
-- title.id: Tiket terbuka per prioritas dan umur
SELECT priority,
       count(*) AS open_tickets,
       count(*) FILTER (WHERE created_at > $now - INTERVAL 1 DAY) AS lt_1d,
       count(*) FILTER (WHERE created_at <= $now - INTERVAL 1 DAY AND created_at > $now - INTERVAL 3 DAY) AS d1_3,
       count(*) FILTER (WHERE created_at <= $now - INTERVAL 3 DAY AND created_at > $now - INTERVAL 7 DAY) AS d3_7,
       count(*) FILTER (WHERE created_at <= $now - INTERVAL 7 DAY) AS gt_7d
FROM backlog_t
GROUP BY priority
ORDER BY list_position(['urgent', 'high', 'normal', 'low'], priority);

-- section: by_status
-- title: Open tickets by status
-- title.id: Tiket terbuka per status
SELECT status,
       count(*) AS open_tickets,
       count(*) FILTER (WHERE assignee IS NULL) AS unassigned,
       round(median(days_between(created_at, $now)), 1) AS median_age_days
FROM backlog_t
GROUP BY status
ORDER BY list_position(['new', 'open', 'pending'], status);

-- section: trend
-- title: Open tickets at the end of each week, and now
-- title.id: Tiket terbuka di akhir setiap minggu, dan saat ini
-- chart: line x=week y=backlog
WITH weeks AS (
    SELECT utc_ts(date_trunc('week', local_ts($now)) - INTERVAL (7 * i) DAY) AS week_end
    FROM range(0, 7) AS r(i)
    UNION ALL SELECT $now + INTERVAL 1 MICROSECOND  -- now, with what happened at this very moment
)
SELECT iso_week(w.week_end - INTERVAL 1 SECOND) AS week,
       ((SELECT count(*) FROM backlog_t)
        + coalesce((SELECT sum(d.delta) FROM backlog_d d WHERE d.ts >= w.week_end), 0))::BIGINT AS backlog
FROM weeks w
ORDER BY w.week_end;

-- section: oldest
-- title: Oldest open tickets
-- title.id: Tiket terbuka tertua
WITH oldest AS (
    SELECT number, team, assignee, priority, status, created_at FROM backlog_t
    ORDER BY created_at, number LIMIT $oldest
)
SELECT o.number AS ticket, t.subject, coalesce(o.team, '–') AS team, o.assignee, o.priority, o.status,
       o.created_at, round(days_between(o.created_at, $now), 1) AS age_days
FROM oldest o JOIN tickets t ON t.number = o.number
ORDER BY o.created_at, o.number;
