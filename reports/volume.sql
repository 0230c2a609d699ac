-- title: Volume
-- title.id: Volume
-- description: New tickets by week, channel, category, weekday and hour (site time zone); resolutions per week; the top categories with their change from the previous period. Spam and automatic mail are counted on their own line.
-- description.id: Tiket baru per minggu, kanal, kategori, hari dan jam (zona waktu situs); penyelesaian per minggu; kategori teratas dan perubahannya dari periode sebelumnya. Spam dan surat otomatis dihitung terpisah.
-- param: since date = monday-28d  First day of the period (site time zone)
-- param: until date = monday      Day after the period (site time zone)
-- param: team text = ''           Only this team (empty: all teams)
-- param: channel text = ''        Only this channel (empty: all channels)
-- param: top int = 10             How many categories to list
--
-- Definitions (README "Report definitions"):
-- new ticket     created in the period; a ticket tagged with one of `reports: exclude_tags`
--                (default spam, auto, otomatis) is not counted but shown as `excluded`.
-- team           of a new ticket: the first team it was given; of a resolution: its team then.
-- resolved       moves from new/open/pending to resolved/closed in that week, by anyone, of
--                tickets that had an agent reply sent by then; `closed_unanswered` the others.
-- All figures come from the history: a past week's figures never change after the fact.

-- section: setup
-- kind: setup
CREATE OR REPLACE TEMP TABLE vol_t AS
WITH t AS (
    SELECT number, created_at, channel, category, excluded(tags) AS is_excluded
    FROM tickets
    WHERE created_at >= $prev_since AND created_at < $until AND ($channel = '' OR channel = $channel)
), first_team AS (
    -- the row that gave a ticket its first team is one where it had none before
    SELECT ticket, arg_min(team, seq) AS team FROM history
    WHERE ts >= $prev_since AND team IS NOT NULL AND prev_team IS NULL
      AND (kind = 'created' OR event IN ('team', 'resolution', 'reopen')) AND ticket IN (SELECT number FROM t)
    GROUP BY ticket
)
SELECT t.*, f.team FROM t LEFT JOIN first_team f ON f.ticket = t.number
WHERE $team = '' OR f.team = $team;

-- section: by_week
-- title: New and resolved tickets by week
-- title.id: Tiket baru dan selesai per minggu
-- chart: bar x=week y=new_tickets,resolved
WITH n AS (
    SELECT iso_week(created_at) AS week, count(*) FILTER (WHERE NOT is_excluded) AS new_tickets,
           count(*) FILTER (WHERE is_excluded) AS excluded
    FROM vol_t WHERE created_at >= $since GROUP BY ALL
), r AS (
    SELECT iso_week(r.ts) AS week, count(*) FILTER (WHERE r.answered) AS resolved,
           count(*) FILTER (WHERE NOT r.answered) AS closed_unanswered
    FROM resolutions r
    WHERE r.ts >= $since AND r.ts < $until AND NOT r.excluded AND ($team = '' OR r.team = $team)
      AND r.ticket NOT IN (SELECT number FROM tickets WHERE $channel <> '' AND channel IS DISTINCT FROM $channel)
    GROUP BY ALL
)
SELECT week, coalesce(new_tickets, 0) AS new_tickets, coalesce(resolved, 0) AS resolved,
       coalesce(closed_unanswered, 0) AS closed_unanswered, coalesce(excluded, 0) AS excluded
FROM n FULL JOIN r USING (week) ORDER BY week;

-- section: by_channel
-- title: By channel
-- title.id: Per kanal
SELECT coalesce(channel, '–') AS channel, count(*) AS tickets, count(*) / sum(count(*)) OVER () AS share_pct
FROM vol_t WHERE created_at >= $since AND NOT is_excluded
GROUP BY ALL ORDER BY tickets DESC, channel;

-- section: top_categories
-- title: Top categories and their trend
-- title.id: Kategori teratas dan trennya
WITH t AS (
    SELECT coalesce(category, '–') AS category, created_at >= $since AS cur FROM vol_t WHERE NOT is_excluded
)
SELECT category, count(*) FILTER (WHERE cur) AS tickets, count(*) FILTER (WHERE NOT cur) AS previous,
       (count(*) FILTER (WHERE cur) - count(*) FILTER (WHERE NOT cur)) / nullif(count(*) FILTER (WHERE NOT cur), 0) AS change_pct
FROM t GROUP BY ALL
ORDER BY tickets DESC, category
LIMIT $top;

-- section: by_weekday
-- title: By day of the week
-- title.id: Per hari
SELECT isodow(local_ts(created_at)) AS weekday, count(*) AS tickets, count(*) / sum(count(*)) OVER () AS share_pct
FROM vol_t WHERE created_at >= $since AND NOT is_excluded
GROUP BY ALL ORDER BY weekday;

-- section: heatmap
-- title: New tickets by day and hour
-- title.id: Tiket baru per hari dan jam
-- kind: chart
-- chart: heatmap x=hour y=weekday value=tickets
SELECT isodow(local_ts(created_at)) AS weekday, hour(local_ts(created_at)) AS hour, count(*) AS tickets
FROM vol_t WHERE created_at >= $since AND NOT is_excluded
GROUP BY ALL ORDER BY weekday, hour;
