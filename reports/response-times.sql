-- title: Response times
-- title.id: Waktu respons
-- description: Time to first response and to resolution, median and 90th percentile, by channel, team and week, in calendar hours and (where an SLA policy applies) business hours. First response counts tickets first answered in the period, resolution those resolved in it.
-- description.id: Waktu hingga respons pertama dan hingga selesai, median dan persentil ke-90, per kanal, tim dan minggu, dalam jam kalender dan (bila ada kebijakan SLA) jam kerja.
-- param: since date = monday-28d  First day of the period (site time zone)
-- param: until date = monday      Day after the period (site time zone)
-- param: team text = ''           Only this team (empty: all teams)
-- param: channel text = ''        Only this channel (empty: all channels)
--
-- Percentiles interpolate linearly between ranks (quantile_cont). Auto-replies are not responses.

-- section: overall
-- title: Overview, with the previous period
-- title.id: Ringkasan, dibanding periode sebelumnya
-- kind: metrics
WITH t AS (
    SELECT created_at, first_response_at, resolved_at FROM tickets
    WHERE ($team = '' OR team = $team) AND ($channel = '' OR channel = $channel)
), fr AS (
    SELECT first_response_at >= $since AS cur, hours_between(created_at, first_response_at) AS h
    FROM t WHERE first_response_at >= $prev_since AND first_response_at < $until
), rs AS (
    SELECT resolved_at >= $since AS cur, hours_between(created_at, resolved_at) AS h
    FROM t WHERE resolved_at >= $prev_since AND resolved_at < $until
)
SELECT * FROM (VALUES
    ('responded', (SELECT count(*) FROM fr WHERE cur), (SELECT count(*) FROM fr WHERE NOT cur), NULL),
    ('first_response_median_hours', (SELECT median(h) FROM fr WHERE cur), (SELECT median(h) FROM fr WHERE NOT cur), 'down'),
    ('first_response_p90_hours', (SELECT quantile_cont(h, 0.9) FROM fr WHERE cur),
                                 (SELECT quantile_cont(h, 0.9) FROM fr WHERE NOT cur), 'down'),
    ('resolved', (SELECT count(*) FROM rs WHERE cur), (SELECT count(*) FROM rs WHERE NOT cur), 'up'),
    ('resolution_median_hours', (SELECT median(h) FROM rs WHERE cur), (SELECT median(h) FROM rs WHERE NOT cur), 'down'),
    ('resolution_p90_hours', (SELECT quantile_cont(h, 0.9) FROM rs WHERE cur),
                             (SELECT quantile_cont(h, 0.9) FROM rs WHERE NOT cur), 'down')
) AS m(metric, value, previous, good);

-- section: by_channel
-- title: By channel
-- title.id: Per kanal
WITH t AS (
    SELECT * FROM tickets
    WHERE ($team = '' OR team = $team) AND ($channel = '' OR channel = $channel)
      AND ((first_response_at >= $since AND first_response_at < $until)
           OR (resolved_at >= $since AND resolved_at < $until))
)
SELECT coalesce(channel, '–') AS channel,
       count(*) FILTER (WHERE first_response_at >= $since AND first_response_at < $until) AS responded,
       median(hours_between(created_at, first_response_at)) FILTER (WHERE first_response_at >= $since AND first_response_at < $until) AS first_response_median_hours,
       quantile_cont(hours_between(created_at, first_response_at), 0.9) FILTER (WHERE first_response_at >= $since AND first_response_at < $until) AS first_response_p90_hours,
       count(*) FILTER (WHERE resolved_at >= $since AND resolved_at < $until) AS resolved,
       median(hours_between(created_at, resolved_at)) FILTER (WHERE resolved_at >= $since AND resolved_at < $until) AS resolution_median_hours,
       quantile_cont(hours_between(created_at, resolved_at), 0.9) FILTER (WHERE resolved_at >= $since AND resolved_at < $until) AS resolution_p90_hours
FROM t GROUP BY ALL ORDER BY responded DESC, channel;

-- section: by_team
-- title: By team
-- title.id: Per tim
WITH t AS (
    SELECT * FROM tickets
    WHERE ($team = '' OR team = $team) AND ($channel = '' OR channel = $channel)
      AND ((first_response_at >= $since AND first_response_at < $until)
           OR (resolved_at >= $since AND resolved_at < $until))
)
SELECT coalesce(team, '–') AS team,
       count(*) FILTER (WHERE first_response_at >= $since AND first_response_at < $until) AS responded,
       median(hours_between(created_at, first_response_at)) FILTER (WHERE first_response_at >= $since AND first_response_at < $until) AS first_response_median_hours,
       quantile_cont(hours_between(created_at, first_response_at), 0.9) FILTER (WHERE first_response_at >= $since AND first_response_at < $until) AS first_response_p90_hours,
       count(*) FILTER (WHERE resolved_at >= $since AND resolved_at < $until) AS resolved,
       median(hours_between(created_at, resolved_at)) FILTER (WHERE resolved_at >= $since AND resolved_at < $until) AS resolution_median_hours,
       quantile_cont(hours_between(created_at, resolved_at), 0.9) FILTER (WHERE resolved_at >= $since AND resolved_at < $until) AS resolution_p90_hours
FROM t GROUP BY ALL ORDER BY responded DESC, team;

-- section: by_week
-- title: By week (site time zone)
-- title.id: Per minggu (zona waktu situs)
-- chart: line x=week y=first_response_median_hours,resolution_median_hours
WITH t AS (
    SELECT * FROM tickets
    WHERE ($team = '' OR team = $team) AND ($channel = '' OR channel = $channel)
), fr AS (
    SELECT iso_week(first_response_at) AS week, count(*) AS responded,
           median(hours_between(created_at, first_response_at)) AS first_response_median_hours,
           quantile_cont(hours_between(created_at, first_response_at), 0.9) AS first_response_p90_hours
    FROM t WHERE first_response_at >= $since AND first_response_at < $until GROUP BY ALL
), rs AS (
    SELECT iso_week(resolved_at) AS week, count(*) AS resolved,
           median(hours_between(created_at, resolved_at)) AS resolution_median_hours,
           quantile_cont(hours_between(created_at, resolved_at), 0.9) AS resolution_p90_hours
    FROM t WHERE resolved_at >= $since AND resolved_at < $until GROUP BY ALL
)
SELECT week, coalesce(responded, 0) AS responded, first_response_median_hours, first_response_p90_hours,
       coalesce(resolved, 0) AS resolved, resolution_median_hours, resolution_p90_hours
FROM fr FULL JOIN rs USING (week)
ORDER BY week;

-- section: distribution
-- title: Time to first response
-- title.id: Waktu hingga respons pertama
-- chart: bar x=bucket y=tickets
-- label: bucket = Hours to first response | Jam hingga respons pertama
WITH b AS (
    SELECT hours_between(created_at, first_response_at) AS h FROM tickets
    WHERE first_response_at >= $since AND first_response_at < $until
      AND ($team = '' OR team = $team) AND ($channel = '' OR channel = $channel)
), buckets(ord, bucket, lo, hi) AS (VALUES
    (1, '< 1', 0, 1), (2, '1–4', 1, 4), (3, '4–8', 4, 8), (4, '8–24', 8, 24), (5, '24–72', 24, 72),
    (6, '72+', 72, NULL)
)
SELECT bucket, count(b.h) AS tickets,
       coalesce(count(b.h) / nullif(sum(count(b.h)) OVER (), 0), 0) AS share_pct
FROM buckets LEFT JOIN b ON b.h >= lo AND (hi IS NULL OR b.h < hi)
GROUP BY ord, bucket ORDER BY ord;

-- section: business_hours
-- title: In business hours (SLA calendars)
-- title.id: Dalam jam kerja (kalender SLA)
-- requires: sla
WITH s AS (
    SELECT t.team, s.target, s.business_seconds_to_meet / 3600.0 AS h
    FROM sla AS s JOIN tickets AS t ON t.number = s.ticket
    WHERE s.met_at >= $since AND s.met_at < $until AND s.target IN ('first_response', 'resolution')
      AND ($team = '' OR t.team = $team) AND ($channel = '' OR t.channel = $channel)
)
SELECT coalesce(team, '–') AS team,
       count(*) FILTER (WHERE target = 'first_response') AS responded,
       median(h) FILTER (WHERE target = 'first_response') AS first_response_median_business_hours,
       quantile_cont(h, 0.9) FILTER (WHERE target = 'first_response') AS first_response_p90_business_hours,
       count(*) FILTER (WHERE target = 'resolution') AS resolved,
       median(h) FILTER (WHERE target = 'resolution') AS resolution_median_business_hours,
       quantile_cont(h, 0.9) FILTER (WHERE target = 'resolution') AS resolution_p90_business_hours
FROM s GROUP BY ALL ORDER BY responded DESC, team;
