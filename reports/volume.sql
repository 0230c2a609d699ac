-- title: Volume
-- title.id: Volume
-- description: New tickets by week, channel, category, weekday and hour (site time zone); the top categories with their change from the previous period.
-- description.id: Tiket baru per minggu, kanal, kategori, hari dan jam (zona waktu situs); kategori teratas dan perubahannya dari periode sebelumnya.
-- param: since date = monday-28d  First day of the period (site time zone)
-- param: until date = monday      Day after the period (site time zone)
-- param: team text = ''           Only this team (empty: all teams)
-- param: channel text = ''        Only this channel (empty: all channels)
-- param: top int = 10             How many categories to list

-- section: by_week
-- title: New tickets by week
-- title.id: Tiket baru per minggu
-- chart: bar x=week y=new_tickets
SELECT iso_week(created_at) AS week, count(*) AS new_tickets,
       count(*) FILTER (WHERE status IN ('resolved', 'closed')) AS resolved
FROM tickets
WHERE created_at >= $since AND created_at < $until
  AND ($team = '' OR team = $team) AND ($channel = '' OR channel = $channel)
GROUP BY ALL ORDER BY week;

-- section: by_channel
-- title: By channel
-- title.id: Per kanal
SELECT coalesce(channel, '–') AS channel, count(*) AS tickets, count(*) / sum(count(*)) OVER () AS share_pct
FROM tickets
WHERE created_at >= $since AND created_at < $until
  AND ($team = '' OR team = $team) AND ($channel = '' OR channel = $channel)
GROUP BY ALL ORDER BY tickets DESC, channel;

-- section: top_categories
-- title: Top categories and their trend
-- title.id: Kategori teratas dan trennya
WITH t AS (
    SELECT coalesce(category, '–') AS category, created_at >= $since AS cur FROM tickets
    WHERE created_at >= $prev_since AND created_at < $until
      AND ($team = '' OR team = $team) AND ($channel = '' OR channel = $channel)
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
FROM tickets
WHERE created_at >= $since AND created_at < $until
  AND ($team = '' OR team = $team) AND ($channel = '' OR channel = $channel)
GROUP BY ALL ORDER BY weekday;

-- section: heatmap
-- title: New tickets by day and hour
-- title.id: Tiket baru per hari dan jam
-- kind: chart
-- chart: heatmap x=hour y=weekday value=tickets
SELECT isodow(local_ts(created_at)) AS weekday, hour(local_ts(created_at)) AS hour, count(*) AS tickets
FROM tickets
WHERE created_at >= $since AND created_at < $until
  AND ($team = '' OR team = $team) AND ($channel = '' OR channel = $channel)
GROUP BY ALL ORDER BY weekday, hour;
