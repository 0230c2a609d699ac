-- title: Weekly report
-- title.id: Laporan mingguan
-- description: One ISO week (default: the last complete week, site time zone): headline numbers with the change from the week before, backlog trend, response times, SLA compliance, volume by day and hour, categories, agents and the tickets open longest at the end of the week.
-- description.id: Satu minggu ISO (bawaan: minggu lengkap terakhir): angka utama dengan perubahan dari minggu sebelumnya, tren tiket terbuka, waktu respons, kepatuhan SLA, volume, kategori, agen dan tiket terbuka terlama di akhir minggu.
-- param: since date = monday-7d  First day of the week (use --week 2026-W47)
-- param: until date = monday     Day after the week
-- param: team text = ''          Only this team (empty: all teams)
--
-- Definitions (README "Report definitions"; the same as backlog, response-times, volume, agents, sla):
-- new ticket       created in the week; tagged with one of `reports: exclude_tags` (spam,
--                  automatic mail): counted only as `excluded`. Team: the first team it was given.
-- resolution       new/open/pending -> resolved/closed in the week, of a ticket that had an agent
--                  reply sent by then (the others: `closed_unanswered`); time from the start of
--                  its episode (creation or the reopen before it). Team: its team then.
-- first response   the first agent reply actually sent, in the week (no auto-replies, no given-up
--                  sends); time from creation. Every first-response figure takes this same set.
-- backlog          open (new/open/pending) at the end of the week, from the status history, with
--                  its team at that moment; for the current week, at the time of the report.
-- reopen_rate      reopens in the week / resolutions in the week.
-- agents           credited to who replied or resolved (see agents.sql).
-- A past week's figures never change after the fact: everything is read from the history.

-- section: setup
-- kind: setup
-- The facts of this week and the week before, in one small table.
CREATE OR REPLACE TEMP TABLE wk_f AS
WITH t AS (
    SELECT number, created_at, channel, category, excluded(tags) AS is_excluded
    FROM tickets WHERE created_at >= $prev_since AND created_at < $until
), first_team AS (
    SELECT ticket, arg_min(team, seq) AS team FROM history
    WHERE ts >= $prev_since AND team IS NOT NULL AND kind IN ('created', 'updated')
      AND ticket IN (SELECT number FROM t)
    GROUP BY ticket
), ch AS (SELECT number, channel, category FROM tickets)
SELECT CASE WHEN t.is_excluded THEN 'excluded' ELSE 'new' END AS what, t.number AS ticket, t.created_at AS ts,
       NULL::DOUBLE AS hours, f.team, t.channel, t.category, NULL::VARCHAR AS agent
FROM t LEFT JOIN first_team f ON f.ticket = t.number
WHERE $team = '' OR f.team = $team
UNION ALL
SELECT CASE WHEN r.answered THEN 'resolved' ELSE 'closed_unanswered' END, r.ticket, r.ts, r.hours, r.team,
       ch.channel, ch.category, r.agent
FROM resolutions r JOIN ch ON ch.number = r.ticket
WHERE r.ts >= $prev_since AND r.ts < $until AND NOT r.excluded AND ($team = '' OR r.team = $team)
UNION ALL
SELECT 'first', f.ticket, f.ts, f.hours, f.team, ch.channel, ch.category, f.agent
FROM first_responses f JOIN ch ON ch.number = f.ticket
WHERE f.ts >= $prev_since AND f.ts < $until AND NOT f.excluded AND ($team = '' OR f.team = $team)
UNION ALL
SELECT 'reply', r.ticket, r.ts, NULL, r.team, NULL, NULL, r.agent
FROM replies r
WHERE r.ts >= $since AND r.ts < $until AND NOT r.auto AND NOT r.failed AND r.agent IS NOT NULL
  AND ($team = '' OR r.team = $team) AND r.ticket NOT IN (SELECT ticket FROM excluded_tickets)
UNION ALL
SELECT 'reopened', o.ticket, o.ts, NULL, r.team, NULL, NULL, r.agent
FROM reopens o ASOF JOIN resolutions r ON r.ticket = o.ticket AND r.seq < o.seq
WHERE o.ts >= $prev_since AND o.ts < $until AND NOT o.excluded AND ($team = '' OR r.team = $team);

-- section: setup_backlog
-- kind: setup
-- Each change that makes a ticket count as open for a team (+1), or stop counting (-1); the
-- backlog of a team at a moment is the sum of its changes before it.
CREATE OR REPLACE TEMP TABLE wk_d AS
SELECT ts, team, delta FROM (
    SELECT ticket, ts, team, 1 AS delta FROM backlog_changes WHERE is_open
    UNION ALL
    SELECT ticket, ts, prev_team, -1 FROM backlog_changes WHERE was_open
)
WHERE ($team = '' OR team = $team) AND ticket NOT IN (SELECT ticket FROM excluded_tickets);

-- section: headline
-- title: This week at a glance
-- title.id: Sekilas minggu ini
-- kind: metrics
WITH f AS (SELECT *, ts >= $since AS cur FROM wk_f),
ends AS (SELECT least($until, $now) AS cur_end, least($since, $now) AS prev_end)
SELECT * FROM (VALUES
    ('new_tickets', (SELECT count(*) FROM f WHERE what = 'new' AND cur),
                    (SELECT count(*) FROM f WHERE what = 'new' AND NOT cur), NULL),
    ('resolved_tickets', (SELECT count(*) FROM f WHERE what = 'resolved' AND cur),
                         (SELECT count(*) FROM f WHERE what = 'resolved' AND NOT cur), 'up'),
    ('backlog', (SELECT coalesce(sum(delta), 0) FROM wk_d WHERE ts < (SELECT cur_end FROM ends)),
                (SELECT coalesce(sum(delta), 0) FROM wk_d WHERE ts < (SELECT prev_end FROM ends)), 'down'),
    ('first_response_median_hours', (SELECT median(hours) FROM f WHERE what = 'first' AND cur),
                                    (SELECT median(hours) FROM f WHERE what = 'first' AND NOT cur), 'down'),
    ('first_response_p90_hours', (SELECT quantile_cont(hours, 0.9) FROM f WHERE what = 'first' AND cur),
                                 (SELECT quantile_cont(hours, 0.9) FROM f WHERE what = 'first' AND NOT cur), 'down'),
    ('resolution_median_hours', (SELECT median(hours) FROM f WHERE what = 'resolved' AND cur),
                                (SELECT median(hours) FROM f WHERE what = 'resolved' AND NOT cur), 'down'),
    ('reopen_rate', (SELECT count(*) FILTER (WHERE what = 'reopened')
                            / nullif(count(*) FILTER (WHERE what = 'resolved'), 0) FROM f WHERE cur),
                    (SELECT count(*) FILTER (WHERE what = 'reopened')
                            / nullif(count(*) FILTER (WHERE what = 'resolved'), 0) FROM f WHERE NOT cur), 'down'),
    ('closed_unanswered', (SELECT count(*) FROM f WHERE what = 'closed_unanswered' AND cur),
                          (SELECT count(*) FROM f WHERE what = 'closed_unanswered' AND NOT cur), 'down'),
    ('excluded_tickets', (SELECT count(*) FROM f WHERE what = 'excluded' AND cur),
                         (SELECT count(*) FROM f WHERE what = 'excluded' AND NOT cur), NULL)
) AS m(metric, value, previous, good);

-- section: sla_headline
-- title: SLA this week
-- title.id: SLA minggu ini
-- kind: metrics
-- requires: sla
WITH s AS (
    SELECT s.*, coalesce(s.met_at, s.due_at) >= $since AS cur
    FROM sla AS s JOIN tickets AS t ON t.number = s.ticket
    WHERE ((s.met_at >= $prev_since AND s.met_at < $until)
           OR (s.met_at IS NULL AND s.breached AND s.due_at >= $prev_since AND s.due_at < $until))
      AND ($team = '' OR t.team = $team) AND s.ticket NOT IN (SELECT ticket FROM excluded_tickets)
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
), lo AS (SELECT min(ws) AS t0 FROM weeks),
new_t AS (
    SELECT t.created_at FROM tickets t
    WHERE t.created_at >= (SELECT t0 FROM lo) AND t.created_at < $until AND NOT excluded(t.tags)
      AND ($team = '' OR t.number IN (
          SELECT ticket FROM history
          WHERE ts >= (SELECT t0 FROM lo) AND team IS NOT NULL AND kind IN ('created', 'updated')
          GROUP BY ticket HAVING arg_min(team, seq) = $team))
), res_t AS (
    SELECT ts FROM resolutions
    WHERE ts >= (SELECT t0 FROM lo) AND ts < $until AND answered AND NOT excluded AND ($team = '' OR team = $team)
), base AS (SELECT coalesce(sum(delta), 0) AS n FROM wk_d WHERE ts < (SELECT t0 FROM lo))
SELECT iso_week(w.ws) AS week,
       (SELECT count(*) FROM new_t WHERE created_at >= w.ws AND created_at < w.we) AS new_tickets,
       (SELECT count(*) FROM res_t WHERE ts >= w.ws AND ts < w.we) AS resolved_tickets,
       ((SELECT n FROM base) + (SELECT coalesce(sum(delta), 0) FROM wk_d
                                WHERE ts >= (SELECT t0 FROM lo) AND ts < least(w.we, $now)))::BIGINT AS backlog
FROM weeks w ORDER BY w.ws;

-- section: sla_by_team
-- title: SLA compliance by team
-- title.id: Kepatuhan SLA per tim
-- requires: sla
-- chart: hbar x=team y=compliance
SELECT coalesce(t.team, '–') AS team, count(*) AS measured,
       count(*) FILTER (WHERE s.breached) AS breached,
       count(*) FILTER (WHERE NOT s.breached) / count(*) AS compliance
FROM sla AS s JOIN tickets AS t ON t.number = s.ticket
WHERE ((s.met_at >= $since AND s.met_at < $until) OR (s.met_at IS NULL AND s.breached AND s.due_at >= $since AND s.due_at < $until))
  AND ($team = '' OR t.team = $team) AND s.ticket NOT IN (SELECT ticket FROM excluded_tickets)
GROUP BY ALL ORDER BY compliance, team;

-- section: by_team
-- title: Teams
-- title.id: Tim
WITH f AS (SELECT * FROM wk_f WHERE ts >= $since),
backlog AS (
    SELECT coalesce(team, '–') AS team, sum(delta) AS backlog
    FROM wk_d WHERE ts < least($until, $now) GROUP BY ALL HAVING sum(delta) <> 0
), facts AS (
    SELECT coalesce(team, '–') AS team,
           count(*) FILTER (WHERE what = 'new') AS new_tickets,
           count(*) FILTER (WHERE what = 'resolved') AS resolved_tickets,
           median(hours) FILTER (WHERE what = 'first') AS first_response_median_hours,
           median(hours) FILTER (WHERE what = 'resolved') AS resolution_median_hours
    FROM f GROUP BY ALL
)
SELECT team, coalesce(new_tickets, 0) AS new_tickets, coalesce(resolved_tickets, 0) AS resolved_tickets,
       coalesce(backlog, 0) AS backlog, first_response_median_hours, resolution_median_hours
FROM facts FULL JOIN backlog USING (team)
ORDER BY new_tickets DESC, team;

-- section: distribution
-- title: Time to first response
-- title.id: Waktu hingga respons pertama
-- chart: bar x=bucket y=tickets
-- label: bucket = Hours to first response | Jam hingga respons pertama
WITH b AS (
    SELECT hours AS h FROM wk_f WHERE what = 'first' AND ts >= $since
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
       count(*) FILTER (WHERE what = 'new' AND ts >= $since) AS new_tickets,
       count(*) FILTER (WHERE what = 'new' AND ts < $since) AS previous,
       count(*) FILTER (WHERE what = 'first' AND ts >= $since) AS responded,
       median(hours) FILTER (WHERE what = 'first' AND ts >= $since) AS first_response_median_hours
FROM wk_f WHERE what IN ('new', 'first')
GROUP BY ALL ORDER BY new_tickets DESC, channel;

-- section: heatmap
-- title: New tickets by day and hour
-- title.id: Tiket baru per hari dan jam
-- kind: chart
-- chart: heatmap x=hour y=weekday value=tickets
SELECT isodow(local_ts(ts)) AS weekday, hour(local_ts(ts)) AS hour, count(*) AS tickets
FROM wk_f
WHERE what = 'new' AND ts >= $since
GROUP BY ALL ORDER BY weekday, hour;

-- section: categories
-- title: Top categories
-- title.id: Kategori teratas
-- limit: 10
WITH t AS (
    SELECT coalesce(category, '–') AS category, ts >= $since AS cur FROM wk_f WHERE what = 'new'
)
SELECT category, count(*) FILTER (WHERE cur) AS tickets, count(*) FILTER (WHERE NOT cur) AS previous,
       (count(*) FILTER (WHERE cur) - count(*) FILTER (WHERE NOT cur)) / nullif(count(*) FILTER (WHERE NOT cur), 0) AS change_pct
FROM t GROUP BY ALL ORDER BY tickets DESC, category;

-- section: agents
-- title: Agents
-- title.id: Agen
WITH f AS (SELECT * FROM wk_f WHERE ts >= $since AND agent IS NOT NULL)
SELECT agent,
       count(DISTINCT ticket) FILTER (WHERE what IN ('reply', 'first', 'resolved')) AS handled,
       count(*) FILTER (WHERE what = 'resolved') AS resolved,
       count(*) FILTER (WHERE what = 'reply') AS replies,
       median(hours) FILTER (WHERE what = 'first') AS first_response_median_hours,
       median(hours) FILTER (WHERE what = 'resolved') AS resolution_median_hours,
       count(*) FILTER (WHERE what = 'reopened') / nullif(count(*) FILTER (WHERE what = 'resolved'), 0) AS reopen_rate
FROM f WHERE what IN ('reply', 'first', 'resolved', 'reopened')
GROUP BY ALL HAVING handled > 0 ORDER BY handled DESC, agent;

-- section: breaches
-- title: SLA breaches this week
-- title.id: Pelanggaran SLA minggu ini
-- requires: sla
-- limit: 10
SELECT s.ticket, t.subject, coalesce(t.team, '–') AS team, t.assignee, s.policy, s.target, s.due_at,
       round(hours_between(s.due_at, coalesce(s.met_at, s.stopped_at, least($now, $until))), 1) AS overdue_hours
FROM sla AS s JOIN tickets AS t ON t.number = s.ticket
WHERE s.breached
  AND ((s.met_at >= $since AND s.met_at < $until) OR (s.met_at IS NULL AND s.breached AND s.due_at >= $since AND s.due_at < $until))
  AND ($team = '' OR t.team = $team) AND s.ticket NOT IN (SELECT ticket FROM excluded_tickets)
ORDER BY overdue_hours DESC, s.ticket;

-- section: oldest
-- title: Open longest at the end of the week
-- title.id: Terbuka terlama di akhir minggu
-- limit: 10
WITH at_end AS (
    -- a ticket's state at the end of the week: the one before its first change after it, or its state now
    SELECT ticket, arg_min(prev_status, seq) AS status, arg_min(prev_team, seq) AS team,
           arg_min(prev_assignee, seq) AS assignee
    FROM history WHERE kind IN ('created', 'updated') AND ts >= least($until, $now) GROUP BY ticket
)
SELECT t.number AS ticket, t.subject, coalesce(coalesce(e.team, t.team), '–') AS team,
       CASE WHEN e.ticket IS NULL THEN t.assignee ELSE e.assignee END AS assignee, t.priority,
       coalesce(e.status, t.status) AS status, t.created_at,
       round(days_between(t.created_at, least($until, $now)), 1) AS age_days
FROM tickets t LEFT JOIN at_end e ON e.ticket = t.number
WHERE t.created_at < least($until, $now) AND coalesce(e.status, t.status) IN ('new', 'open', 'pending')
  AND NOT excluded(t.tags)
  AND ($team = '' OR (CASE WHEN e.ticket IS NULL THEN t.team ELSE e.team END) = $team)
ORDER BY t.created_at, t.number
LIMIT 10;
