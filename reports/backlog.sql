-- title: Backlog
-- title.id: Tiket terbuka
-- description: Open tickets (new, open, pending) by team, priority and status, how long they have waited, the trend over eight weeks, and the oldest tickets.
-- description.id: Tiket terbuka (baru, terbuka, menunggu) per tim, prioritas dan status, lama menunggu, tren delapan minggu, dan tiket tertua.
-- param: team text = ''     Only this team (empty: all teams)
-- param: channel text = ''  Only this channel (empty: all channels)
-- param: oldest int = 15    How many of the oldest tickets to list
--
-- Age is counted from creation to now; buckets are [0, 1), [1, 3), [3, 7) and 7+ days.
-- "Open a week ago" counts tickets created before then and not resolved by then.

-- section: setup
-- kind: setup
-- One scan of tickets: the open ones, and those resolved in the last eight weeks (for the trend).
-- Subjects are left out (the widest column); the oldest-tickets section fetches its few.
CREATE OR REPLACE TEMP TABLE backlog_t AS
SELECT number, team, assignee, priority, status, created_at, resolved_at,
       status IN ('new', 'open', 'pending') AS is_open
FROM tickets
WHERE (status IN ('new', 'open', 'pending') OR resolved_at >= $now - INTERVAL 56 DAY)
  AND ($team = '' OR team = $team) AND ($channel = '' OR channel = $channel);

-- section: summary
-- title: Backlog now
-- title.id: Tiket terbuka saat ini
-- kind: metrics
SELECT * FROM (VALUES
    ('open_tickets',
     (SELECT count(*) FROM backlog_t WHERE is_open),
     (SELECT count(*) FROM backlog_t WHERE created_at < $now - INTERVAL 7 DAY
                                       AND (resolved_at IS NULL OR resolved_at >= $now - INTERVAL 7 DAY)),
     'down'),
    ('unassigned', (SELECT count(*) FROM backlog_t WHERE is_open AND assignee IS NULL), NULL, 'down'),
    ('waiting_7d', (SELECT count(*) FROM backlog_t WHERE is_open AND created_at < $now - INTERVAL 7 DAY), NULL, 'down')
) AS m(metric, value, previous, good);

-- section: by_team
-- title: Open tickets by team and age
-- title.id: Tiket terbuka per tim dan umur
-- chart: hbar x=team y=open_tickets
SELECT coalesce(team, '–') AS team,
       count(*) AS open_tickets,
       count(*) FILTER (WHERE priority IN ('urgent', 'high')) AS urgent_high,
       count(*) FILTER (WHERE $now - created_at < INTERVAL 1 DAY) AS lt_1d,
       count(*) FILTER (WHERE $now - created_at >= INTERVAL 1 DAY AND $now - created_at < INTERVAL 3 DAY) AS d1_3,
       count(*) FILTER (WHERE $now - created_at >= INTERVAL 3 DAY AND $now - created_at < INTERVAL 7 DAY) AS d3_7,
       count(*) FILTER (WHERE $now - created_at >= INTERVAL 7 DAY) AS gt_7d
FROM backlog_t WHERE is_open
GROUP BY ALL
ORDER BY open_tickets DESC, team;

-- section: by_priority
-- title: Open tickets by priority and age
-- title.id: Tiket terbuka per prioritas dan umur
SELECT priority,
       count(*) AS open_tickets,
       count(*) FILTER (WHERE $now - created_at < INTERVAL 1 DAY) AS lt_1d,
       count(*) FILTER (WHERE $now - created_at >= INTERVAL 1 DAY AND $now - created_at < INTERVAL 3 DAY) AS d1_3,
       count(*) FILTER (WHERE $now - created_at >= INTERVAL 3 DAY AND $now - created_at < INTERVAL 7 DAY) AS d3_7,
       count(*) FILTER (WHERE $now - created_at >= INTERVAL 7 DAY) AS gt_7d
FROM backlog_t WHERE is_open
GROUP BY priority
ORDER BY list_position(['urgent', 'high', 'normal', 'low'], priority);

-- section: by_status
-- title: Open tickets by status
-- title.id: Tiket terbuka per status
SELECT status,
       count(*) AS open_tickets,
       count(*) FILTER (WHERE assignee IS NULL) AS unassigned,
       round(median(days_between(created_at, $now)), 1) AS median_age_days
FROM backlog_t WHERE is_open
GROUP BY status
ORDER BY list_position(['new', 'open', 'pending'], status);

-- section: trend
-- title: Open tickets at the end of each week, and now
-- title.id: Tiket terbuka di akhir setiap minggu, dan saat ini
-- chart: line x=week y=backlog
WITH weeks AS (
    SELECT utc_ts(date_trunc('week', local_ts($now)) - INTERVAL (7 * i) DAY) AS week_end
    FROM range(0, 7) AS r(i)
    UNION ALL SELECT $now
)
SELECT iso_week(week_end - INTERVAL 1 SECOND) AS week,
       count(t.created_at) FILTER (WHERE t.created_at < week_end
                                   AND (t.resolved_at IS NULL OR t.resolved_at >= week_end)) AS backlog
FROM weeks LEFT JOIN backlog_t AS t ON true
GROUP BY week_end
ORDER BY week_end;

-- section: oldest
-- title: Oldest open tickets
-- title.id: Tiket terbuka tertua
WITH oldest AS (
    SELECT number, team, assignee, priority, status, created_at FROM backlog_t WHERE is_open
    ORDER BY created_at, number LIMIT $oldest
)
SELECT o.number AS ticket, t.subject, coalesce(o.team, '–') AS team, o.assignee, o.priority, o.status,
       o.created_at, round(days_between(o.created_at, $now), 1) AS age_days
FROM oldest o JOIN tickets t ON t.number = o.number
ORDER BY o.created_at, o.number;
