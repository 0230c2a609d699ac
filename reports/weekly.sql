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
--                  its team at that moment; for the current week, now (with what happened at
--                  this very moment).
-- reopen_rate      reopens in the week / resolutions in the week.
-- agents           credited to who replied or resolved (see agents.sql).
-- A past week's figures never change after the fact: everything is read from the history.

-- section: setup
-- kind: setup
-- The facts of the report in one small table: new tickets and resolutions of the eight weeks
-- of the trend, the rest of this week and the week before.
CREATE OR REPLACE TEMP TABLE wk_f AS
WITH t AS (
    SELECT number, created_at, channel, category, excluded(tags) AS is_excluded
    FROM tickets WHERE created_at >= utc_ts(local_ts($since) - INTERVAL 49 DAY) AND created_at < $until
), first_team AS (
    -- the row that gave a ticket its first team is one where it had none before (needed for
    -- the two weeks; for the eight of the trend only in a team's report)
    SELECT ticket, arg_min(team, seq) AS team FROM history
    WHERE ts >= CASE WHEN $team = '' THEN $prev_since ELSE utc_ts(local_ts($since) - INTERVAL 49 DAY) END
      AND team IS NOT NULL AND prev_team IS NULL
      AND (kind = 'created' OR event IN ('team', 'resolution', 'reopen')) AND ticket IN (SELECT number FROM t)
    GROUP BY ticket
)
SELECT CASE WHEN t.is_excluded THEN 'excluded' ELSE 'new' END AS what, t.number AS ticket, t.created_at AS ts,
       NULL::DOUBLE AS hours, f.team, t.channel, t.category, NULL::VARCHAR AS agent
FROM t LEFT JOIN first_team f ON f.ticket = t.number
WHERE $team = '' OR f.team = $team
UNION ALL
SELECT CASE WHEN r.answered THEN 'resolved' ELSE 'closed_unanswered' END, r.ticket, r.ts, r.hours, r.team,
       NULL, NULL, r.agent
FROM resolutions r
WHERE r.ts >= utc_ts(local_ts($since) - INTERVAL 49 DAY) AND r.ts < $until AND NOT r.excluded
  AND ($team = '' OR r.team = $team)
UNION ALL
SELECT 'first', f.ticket, f.ts, f.hours, f.team, t.channel, NULL, f.agent
FROM first_responses f JOIN tickets t ON t.number = f.ticket
WHERE f.ts >= $prev_since AND f.ts < $until AND NOT f.excluded AND ($team = '' OR f.team = $team)
UNION ALL
SELECT 'reply', r.ticket, r.ts, NULL, r.team, NULL, NULL, r.agent
FROM replies r
WHERE r.ts >= $since AND r.ts < $until AND NOT r.auto AND NOT r.failed AND r.agent IS NOT NULL
  AND ($team = '' OR r.team = $team) AND r.ticket NOT IN (SELECT ticket FROM excluded_tickets)
UNION ALL
SELECT 'reopened', o.ticket, o.ts, NULL, o.resolved_team, NULL, NULL, o.resolved_by_agent
FROM reopens o
WHERE o.ts >= $prev_since AND o.ts < $until AND NOT o.excluded AND ($team = '' OR o.resolved_team = $team);

-- section: setup_backlog
-- kind: setup
-- The backlog of a team at a moment T = its open tickets now, minus every change since T that
-- made a ticket count as open for it, plus every one that made a ticket stop counting: only
-- the changes of the last weeks are read, whatever the size of the history.
CREATE OR REPLACE TEMP TABLE wk_d AS
SELECT ts, team, prev_team, is_open, was_open FROM backlog_changes
WHERE ts >= utc_ts(local_ts($since) - INTERVAL 42 DAY) AND ticket NOT IN (SELECT ticket FROM excluded_tickets);

-- section: setup_open
-- kind: setup
CREATE OR REPLACE TEMP TABLE wk_open AS
SELECT team, count(*) AS n FROM tickets
WHERE status IN ('new', 'open', 'pending') AND number NOT IN (SELECT ticket FROM excluded_tickets)
GROUP BY team;

-- section: headline
-- title: This week at a glance
-- title.id: Sekilas minggu ini
-- kind: metrics
WITH f AS (SELECT *, ts >= $since AS cur FROM wk_f WHERE ts >= $prev_since),
ends AS (SELECT least($until, $now + INTERVAL 1 MICROSECOND) AS cur_end,
                 least($since, $now + INTERVAL 1 MICROSECOND) AS prev_end),
backlog_at AS (
    SELECT e.t_end, (SELECT coalesce(sum(n), 0) FROM wk_open WHERE $team = '' OR team = $team)
                 - coalesce(sum(CASE WHEN d.is_open AND ($team = '' OR d.team = $team) THEN 1 ELSE 0 END), 0)
                 + coalesce(sum(CASE WHEN d.was_open AND ($team = '' OR d.prev_team = $team) THEN 1 ELSE 0 END), 0) AS n
    FROM (SELECT cur_end AS t_end FROM ends UNION SELECT prev_end FROM ends) e LEFT JOIN wk_d d ON d.ts >= e.t_end
    GROUP BY e.t_end
)
SELECT * FROM (VALUES
    ('new_tickets', (SELECT count(*) FROM f WHERE what = 'new' AND cur),
                    (SELECT count(*) FROM f WHERE what = 'new' AND NOT cur), NULL),
    ('resolved_tickets', (SELECT count(*) FROM f WHERE what = 'resolved' AND cur),
                         (SELECT count(*) FROM f WHERE what = 'resolved' AND NOT cur), 'up'),
    ('backlog', (SELECT n FROM backlog_at WHERE t_end = (SELECT cur_end FROM ends)),
                (SELECT n FROM backlog_at WHERE t_end = (SELECT prev_end FROM ends)), 'down'),
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

-- section: setup_sla
-- kind: setup
-- requires: sla
-- The SLA clocks counted this week and the week before (see sla.sql: met on time in the week,
-- or breached with the due time in the week).
CREATE OR REPLACE TEMP TABLE wk_sla AS
SELECT s.*, coalesce(CASE WHEN s.breached THEN s.due_at END, s.met_at) >= $since AS cur,
       hours_between(s.due_at, least(coalesce(s.met_at, s.stopped_at, $now), $now, $until)) AS overdue_hours
FROM sla AS s
WHERE ((NOT s.breached AND s.met_at >= $prev_since AND s.met_at < $until)
       OR (s.breached AND s.due_at >= $prev_since AND s.due_at < $until))
  AND ($team = '' OR s.team = $team) AND s.ticket NOT IN (SELECT ticket FROM excluded_tickets);

-- section: sla_headline
-- title: SLA this week
-- title.id: SLA minggu ini
-- kind: metrics
-- requires: sla
SELECT * FROM (VALUES
    ('sla_compliance', (SELECT count(*) FILTER (WHERE NOT breached) / nullif(count(*), 0) FROM wk_sla WHERE cur),
                       (SELECT count(*) FILTER (WHERE NOT breached) / nullif(count(*), 0) FROM wk_sla WHERE NOT cur), 'up'),
    ('breached', (SELECT count(*) FILTER (WHERE breached) FROM wk_sla WHERE cur),
                 (SELECT count(*) FILTER (WHERE breached) FROM wk_sla WHERE NOT cur), 'down')
) AS m(metric, value, previous, good);

-- section: trend
-- title: The last eight weeks
-- title.id: Delapan minggu terakhir
-- chart: line x=week y=new_tickets,resolved_tickets,backlog
WITH weeks AS (
    SELECT utc_ts(local_ts($since) - INTERVAL (7 * i) DAY) AS ws,
           utc_ts(local_ts($since) - INTERVAL (7 * i - 7) DAY) AS we,
           date_trunc('week', local_ts($since) - INTERVAL (7 * i) DAY) AS wk
    FROM range(0, 8) AS r(i)
), new_c AS (
    SELECT date_trunc('week', local_ts(ts)) AS wk, count(*) AS n FROM wk_f WHERE what = 'new' GROUP BY 1
), res_c AS (
    SELECT date_trunc('week', local_ts(ts)) AS wk, count(*) AS n FROM wk_f WHERE what = 'resolved' GROUP BY 1
), backlog AS (
    SELECT w.ws, (SELECT coalesce(sum(n), 0) FROM wk_open WHERE $team = '' OR team = $team)
                 - coalesce(sum(CASE WHEN d.is_open AND ($team = '' OR d.team = $team) THEN 1 ELSE 0 END), 0)
                 + coalesce(sum(CASE WHEN d.was_open AND ($team = '' OR d.prev_team = $team) THEN 1 ELSE 0 END), 0) AS n
    FROM weeks w LEFT JOIN wk_d d ON d.ts >= least(w.we, $now + INTERVAL 1 MICROSECOND)
    GROUP BY w.ws
)
SELECT iso_week(w.ws) AS week, coalesce(new_c.n, 0) AS new_tickets, coalesce(res_c.n, 0) AS resolved_tickets,
       b.n::BIGINT AS backlog
FROM weeks w LEFT JOIN new_c USING (wk) LEFT JOIN res_c USING (wk) JOIN backlog b USING (ws)
ORDER BY w.ws;

-- section: sla_by_team
-- title: SLA compliance by team
-- title.id: Kepatuhan SLA per tim
-- requires: sla
-- chart: hbar x=team y=compliance
SELECT coalesce(team, '–') AS team, count(*) AS measured,
       count(*) FILTER (WHERE breached) AS breached,
       count(*) FILTER (WHERE NOT breached) / count(*) AS compliance
FROM wk_sla WHERE cur
GROUP BY ALL ORDER BY compliance, team;

-- section: by_team
-- title: Teams
-- title.id: Tim
WITH f AS (SELECT * FROM wk_f WHERE ts >= $since),
backlog AS (
    SELECT coalesce(team, '–') AS team, sum(n) AS backlog FROM (
        SELECT team, n FROM wk_open
        UNION ALL SELECT team, -1 FROM wk_d WHERE is_open AND ts >= least($until, $now + INTERVAL 1 MICROSECOND)
        UNION ALL SELECT prev_team, 1 FROM wk_d WHERE was_open AND ts >= least($until, $now + INTERVAL 1 MICROSECOND)
    ) WHERE $team = '' OR team = $team
    GROUP BY ALL HAVING sum(n) <> 0
), facts AS (
    SELECT coalesce(team, '–') AS team,
           count(*) FILTER (WHERE what = 'new') AS new_tickets,
           count(*) FILTER (WHERE what = 'resolved') AS resolved_tickets,
           median(hours) FILTER (WHERE what = 'first') AS first_response_median_hours,
           median(hours) FILTER (WHERE what = 'resolved') AS resolution_median_hours
    FROM f WHERE what IN ('new', 'resolved', 'first') GROUP BY ALL
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
FROM wk_f WHERE what IN ('new', 'first') AND ts >= $prev_since
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
    SELECT coalesce(category, '–') AS category, ts >= $since AS cur FROM wk_f WHERE what = 'new' AND ts >= $prev_since
)
SELECT category, count(*) FILTER (WHERE cur) AS tickets, count(*) FILTER (WHERE NOT cur) AS previous,
       (count(*) FILTER (WHERE cur) - count(*) FILTER (WHERE NOT cur)) / nullif(count(*) FILTER (WHERE NOT cur), 0) AS change_pct
FROM t GROUP BY ALL ORDER BY tickets DESC, category;

-- section: agents
-- title: Agents
-- title.id: Agen
WITH f AS (SELECT * FROM wk_f WHERE ts >= $since AND agent IS NOT NULL)
SELECT agent,
       count(DISTINCT ticket) FILTER (WHERE what IN ('reply', 'first', 'resolved', 'closed_unanswered')) AS handled,
       count(*) FILTER (WHERE what = 'resolved') AS resolved,
       count(*) FILTER (WHERE what = 'reply') AS replies,
       median(hours) FILTER (WHERE what = 'first') AS first_response_median_hours,
       median(hours) FILTER (WHERE what = 'resolved') AS resolution_median_hours,
       count(*) FILTER (WHERE what = 'reopened') / nullif(count(*) FILTER (WHERE what = 'resolved'), 0) AS reopen_rate
FROM f WHERE what IN ('reply', 'first', 'resolved', 'closed_unanswered', 'reopened')
GROUP BY ALL HAVING handled > 0 ORDER BY handled DESC, agent;

-- section: breaches
-- title: SLA breaches this week
-- title.id: Pelanggaran SLA minggu ini
-- requires: sla
-- limit: 10
SELECT s.ticket, t.subject, coalesce(s.team, '–') AS team, s.assignee, s.policy, s.target, s.due_at,
       round(s.overdue_hours, 1) AS overdue_hours
FROM wk_sla AS s JOIN tickets AS t ON t.number = s.ticket
WHERE s.breached AND s.cur
ORDER BY overdue_hours DESC, s.ticket, s.target, s.cycle;

-- section: oldest
-- title: Open longest at the end of the week
-- title.id: Terbuka terlama di akhir minggu
-- limit: 10
WITH at_end AS (
    -- a ticket's state at the end of the week: the one before its first change after it
    SELECT ticket, arg_min_null(prev_status, seq) AS status, arg_min_null(prev_team, seq) AS team,
           arg_min_null(prev_assignee, seq) AS assignee
    FROM history WHERE kind IN ('created', 'updated') AND ts >= least($until, $now + INTERVAL 1 MICROSECOND)
    GROUP BY ticket
), unchanged AS (  -- or, without a change since, its state now
    SELECT number AS ticket, status, team, assignee, created_at FROM tickets
    WHERE status IN ('new', 'open', 'pending') AND created_at < least($until, $now + INTERVAL 1 MICROSECOND)
      AND number NOT IN (SELECT ticket FROM at_end)
), open_then AS (
    SELECT ticket, status, team, assignee, created_at FROM unchanged
    UNION ALL
    SELECT e.ticket, e.status, e.team, e.assignee, t.created_at
    FROM at_end e JOIN tickets t ON t.number = e.ticket
    WHERE e.status IN ('new', 'open', 'pending') AND t.created_at < least($until, $now + INTERVAL 1 MICROSECOND)
), oldest AS (
    SELECT * FROM open_then
    WHERE ($team = '' OR team = $team) AND ticket NOT IN (SELECT ticket FROM excluded_tickets)
    ORDER BY created_at, ticket LIMIT 10
)
SELECT o.ticket, t.subject, coalesce(o.team, '–') AS team, o.assignee, t.priority, o.status, o.created_at,
       round(days_between(o.created_at, least($until, $now)), 1) AS age_days
FROM oldest o JOIN tickets t ON t.number = o.ticket
ORDER BY o.created_at, o.ticket;
