-- title: Weekly report
-- title.id: Laporan mingguan
-- description: One ISO week (default: the last complete week, site time zone): headline numbers with the change from the week before, backlog trend, response times, SLA compliance, volume by day and hour, categories, agents and the oldest open tickets.
-- description.id: Satu minggu ISO (bawaan: minggu lengkap terakhir): angka utama dengan perubahan dari minggu sebelumnya, tren tiket terbuka, waktu respons, kepatuhan SLA, volume, kategori, agen dan tiket terbuka tertua.
-- param: since date = monday-7d  First day of the week (use --week 2026-W47)
-- param: until date = monday     Day after the week
-- param: team text = ''          Only this team (empty: all teams)
--
-- Backlog at a moment = created before it and not resolved by then. Response and resolution
-- times count tickets first answered / resolved in the week (see response-times.sql).

-- section: setup
-- kind: setup
-- One scan of tickets: everything the week, the week before and the eight-week trend can touch.
CREATE OR REPLACE TEMP TABLE week_t AS
SELECT number, subject, status, priority, category, team, assignee, channel, created_at, first_response_at,
       resolved_at, reopened
FROM tickets
WHERE ($team = '' OR team = $team)
  AND (resolved_at IS NULL OR resolved_at >= $since - INTERVAL 56 DAY OR first_response_at >= $prev_since);

-- section: headline
-- title: This week at a glance
-- title.id: Sekilas minggu ini
-- kind: metrics
WITH t AS (
    SELECT * FROM week_t WHERE created_at >= $prev_since OR resolved_at IS NULL OR resolved_at >= $prev_since
       OR first_response_at >= $prev_since
), backlog AS (
    SELECT count(*) FILTER (WHERE created_at < $until AND (resolved_at IS NULL OR resolved_at >= $until)) AS cur,
           count(*) FILTER (WHERE created_at < $since AND (resolved_at IS NULL OR resolved_at >= $since)) AS prev
    FROM t
), fr AS (
    SELECT first_response_at >= $since AS cur, hours_between(created_at, first_response_at) AS h
    FROM t WHERE first_response_at >= $prev_since AND first_response_at < $until
), rs AS (
    SELECT resolved_at >= $since AS cur, hours_between(created_at, resolved_at) AS h, reopened
    FROM t WHERE resolved_at >= $prev_since AND resolved_at < $until
)
SELECT * FROM (VALUES
    ('new_tickets', (SELECT count(*) FROM t WHERE created_at >= $since AND created_at < $until),
                    (SELECT count(*) FROM t WHERE created_at >= $prev_since AND created_at < $since), NULL),
    ('resolved_tickets', (SELECT count(*) FROM rs WHERE cur), (SELECT count(*) FROM rs WHERE NOT cur), 'up'),
    ('backlog', (SELECT cur FROM backlog), (SELECT prev FROM backlog), 'down'),
    ('first_response_median_hours', (SELECT median(h) FROM fr WHERE cur), (SELECT median(h) FROM fr WHERE NOT cur), 'down'),
    ('first_response_p90_hours', (SELECT quantile_cont(h, 0.9) FROM fr WHERE cur),
                                 (SELECT quantile_cont(h, 0.9) FROM fr WHERE NOT cur), 'down'),
    ('resolution_median_hours', (SELECT median(h) FROM rs WHERE cur), (SELECT median(h) FROM rs WHERE NOT cur), 'down'),
    ('reopen_rate', (SELECT count(*) FILTER (WHERE reopened > 0) / nullif(count(*), 0) FROM rs WHERE cur),
                    (SELECT count(*) FILTER (WHERE reopened > 0) / nullif(count(*), 0) FROM rs WHERE NOT cur), 'down')
) AS m(metric, value, previous, good);

-- section: sla_headline
-- title: SLA this week
-- title.id: SLA minggu ini
-- kind: metrics
-- requires: sla
WITH s AS (
    SELECT s.*, coalesce(s.met_at, s.due_at) >= $since AS cur
    FROM sla AS s JOIN week_t AS t ON t.number = s.ticket
    WHERE ((s.met_at >= $prev_since AND s.met_at < $until)
           OR (s.met_at IS NULL AND s.breached AND s.due_at >= $prev_since AND s.due_at < $until))
      AND ($team = '' OR t.team = $team)
)
SELECT * FROM (VALUES
    ('sla_compliance', (SELECT count(*) FILTER (WHERE NOT breached) / nullif(count(*), 0) FROM s WHERE cur),
                       (SELECT count(*) FILTER (WHERE NOT breached) / nullif(count(*), 0) FROM s WHERE NOT cur), 'up'),
    ('breached', (SELECT count(*) FILTER (WHERE breached) FROM s WHERE cur),
                 (SELECT count(*) FILTER (WHERE breached) FROM s WHERE NOT cur), 'down')
) AS m(metric, value, previous, good);

-- section: trend
-- title: The last eight weeks
-- title.id: Delapan minggu terakhir
-- chart: line x=week y=new_tickets,resolved_tickets,backlog
WITH weeks AS (
    SELECT utc_ts(local_ts($since) - INTERVAL (7 * i) DAY) AS ws,
           utc_ts(local_ts($since) - INTERVAL (7 * i - 7) DAY) AS we
    FROM range(0, 8) AS r(i)
), t AS (
    SELECT created_at, resolved_at FROM week_t
    WHERE created_at < $until AND (resolved_at IS NULL OR resolved_at >= $since - INTERVAL 50 DAY)
)
SELECT iso_week(ws) AS week,
       count(t.created_at) FILTER (WHERE t.created_at >= ws AND t.created_at < we) AS new_tickets,
       count(t.created_at) FILTER (WHERE t.resolved_at >= ws AND t.resolved_at < we) AS resolved_tickets,
       count(t.created_at) FILTER (WHERE t.created_at < we AND (t.resolved_at IS NULL OR t.resolved_at >= we)) AS backlog
FROM weeks LEFT JOIN t ON true
GROUP BY ws ORDER BY ws;

-- section: sla_by_team
-- title: SLA compliance by team
-- title.id: Kepatuhan SLA per tim
-- requires: sla
-- chart: hbar x=team y=compliance
SELECT coalesce(t.team, '–') AS team, count(*) AS measured,
       count(*) FILTER (WHERE s.breached) AS breached,
       count(*) FILTER (WHERE NOT s.breached) / count(*) AS compliance
FROM sla AS s JOIN week_t AS t ON t.number = s.ticket
WHERE ((s.met_at >= $since AND s.met_at < $until) OR (s.met_at IS NULL AND s.breached AND s.due_at >= $since AND s.due_at < $until))
  AND ($team = '' OR t.team = $team)
GROUP BY ALL ORDER BY compliance, team;

-- section: by_team
-- title: Teams
-- title.id: Tim
SELECT coalesce(team, '–') AS team,
       count(*) FILTER (WHERE created_at >= $since AND created_at < $until) AS new_tickets,
       count(*) FILTER (WHERE resolved_at >= $since AND resolved_at < $until) AS resolved_tickets,
       count(*) FILTER (WHERE created_at < $until AND (resolved_at IS NULL OR resolved_at >= $until)) AS backlog,
       median(hours_between(created_at, first_response_at)) FILTER (WHERE first_response_at >= $since AND first_response_at < $until) AS first_response_median_hours,
       median(hours_between(created_at, resolved_at)) FILTER (WHERE resolved_at >= $since AND resolved_at < $until) AS resolution_median_hours
FROM week_t
WHERE (created_at >= $since OR resolved_at IS NULL OR resolved_at >= $since)
GROUP BY ALL ORDER BY new_tickets DESC, team;

-- section: distribution
-- title: Time to first response
-- title.id: Waktu hingga respons pertama
-- chart: bar x=bucket y=tickets
-- label: bucket = Hours to first response | Jam hingga respons pertama
WITH b AS (
    SELECT hours_between(created_at, first_response_at) AS h FROM week_t
    WHERE first_response_at >= $since AND first_response_at < $until
), buckets(ord, bucket, lo, hi) AS (VALUES
    (1, '< 1', 0, 1), (2, '1–4', 1, 4), (3, '4–8', 4, 8), (4, '8–24', 8, 24), (5, '24–72', 24, 72),
    (6, '72+', 72, NULL)
)
SELECT bucket, count(b.h) AS tickets,
       coalesce(count(b.h) / nullif(sum(count(b.h)) OVER (), 0), 0) AS share_pct
FROM buckets LEFT JOIN b ON b.h >= lo AND (hi IS NULL OR b.h < hi)
GROUP BY ord, bucket ORDER BY ord;

-- section: by_channel
-- title: Channels
-- title.id: Kanal
SELECT coalesce(channel, '–') AS channel,
       count(*) FILTER (WHERE created_at >= $since) AS new_tickets,
       count(*) FILTER (WHERE created_at < $since) AS previous,
       median(hours_between(created_at, first_response_at)) FILTER (WHERE created_at >= $since) AS first_response_median_hours
FROM week_t
WHERE created_at >= $prev_since AND created_at < $until
GROUP BY ALL ORDER BY new_tickets DESC, channel;

-- section: heatmap
-- title: New tickets by day and hour
-- title.id: Tiket baru per hari dan jam
-- kind: chart
-- chart: heatmap x=hour y=weekday value=tickets
SELECT isodow(local_ts(created_at)) AS weekday, hour(local_ts(created_at)) AS hour, count(*) AS tickets
FROM week_t
WHERE created_at >= $since AND created_at < $until
GROUP BY ALL ORDER BY weekday, hour;

-- section: categories
-- title: Top categories
-- title.id: Kategori teratas
-- limit: 10
WITH t AS (
    SELECT coalesce(category, '–') AS category, created_at >= $since AS cur FROM week_t
    WHERE created_at >= $prev_since AND created_at < $until
)
SELECT category, count(*) FILTER (WHERE cur) AS tickets, count(*) FILTER (WHERE NOT cur) AS previous,
       (count(*) FILTER (WHERE cur) - count(*) FILTER (WHERE NOT cur)) / nullif(count(*) FILTER (WHERE NOT cur), 0) AS change_pct
FROM t GROUP BY ALL ORDER BY tickets DESC, category;

-- section: agents
-- title: Agents
-- title.id: Agen
WITH t AS (
    SELECT *, first_response_at >= $since AND first_response_at < $until AS answered,
              resolved_at >= $since AND resolved_at < $until AS closed_now
    FROM week_t
    WHERE ((first_response_at >= $since AND first_response_at < $until) OR (resolved_at >= $since AND resolved_at < $until))
)
SELECT coalesce(assignee, '–') AS agent, count(*) AS handled,
       count(*) FILTER (WHERE closed_now) AS resolved,
       median(hours_between(created_at, first_response_at)) FILTER (WHERE answered) AS first_response_median_hours,
       median(hours_between(created_at, resolved_at)) FILTER (WHERE closed_now) AS resolution_median_hours,
       count(*) FILTER (WHERE closed_now AND reopened > 0) / nullif(count(*) FILTER (WHERE closed_now), 0) AS reopen_rate
FROM t GROUP BY ALL ORDER BY handled DESC, agent;

-- section: breaches
-- title: SLA breaches this week
-- title.id: Pelanggaran SLA minggu ini
-- requires: sla
-- limit: 10
SELECT s.ticket, t.subject, coalesce(t.team, '–') AS team, t.assignee, s.policy, s.target, s.due_at,
       round(hours_between(s.due_at, coalesce(s.met_at, least($now, $until))), 1) AS overdue_hours
FROM sla AS s JOIN week_t AS t ON t.number = s.ticket
WHERE s.breached
  AND ((s.met_at >= $since AND s.met_at < $until) OR (s.met_at IS NULL AND s.breached AND s.due_at >= $since AND s.due_at < $until))
  AND ($team = '' OR t.team = $team)
ORDER BY overdue_hours DESC, s.ticket;

-- section: oldest
-- title: Oldest open tickets
-- title.id: Tiket terbuka tertua
-- limit: 10
SELECT number AS ticket, subject, coalesce(team, '–') AS team, assignee, priority, status, created_at,
       round(days_between(created_at, $now), 1) AS age_days
FROM week_t
WHERE status IN ('new', 'open', 'pending')
ORDER BY created_at, number
LIMIT 10;
