-- title: Response times
-- title.id: Waktu respons
-- description: Time to first response and to resolution, median and 90th percentile, by channel, team and week, in calendar hours and (where an SLA policy applies) business hours. First response counts tickets first answered in the period, resolution the resolutions in it.
-- description.id: Waktu hingga respons pertama dan hingga selesai, median dan persentil ke-90, per kanal, tim dan minggu, dalam jam kalender dan (bila ada kebijakan SLA) jam kerja.
-- param: since date = monday-28d  First day of the period (site time zone)
-- param: until date = monday      Day after the period (site time zone)
-- param: team text = ''           Only this team (empty: all teams)
-- param: channel text = ''        Only this channel (empty: all channels)
--
-- Definitions (README "Report definitions"):
-- first response  the first agent reply actually sent (auto-replies and replies whose sending
--                 was given up do not count), counted in the period it was sent; its time runs
--                 from the ticket's creation. Team: the ticket's team when it was sent.
-- resolution      a move from new/open/pending to resolved/closed, counted in the period it
--                 happened; its time runs from the start of that episode (creation, or the
--                 reopen before it), so a reopened ticket counts each resolution on its own.
--                 Closing a ticket that never had a reply sent is not a resolution here.
-- business hours  the SLA clocks met in the period (see sla.sql): the policy's calendar,
--                 paused while pending, and for a resolution counted from creation (the time
--                 while resolved is a pause). Team: the ticket's team when the clock was met.
-- Tickets tagged with one of `reports: exclude_tags` (spam, automatic mail) are left out.
-- Percentiles interpolate linearly between ranks (quantile_cont).

-- section: setup
-- kind: setup
-- The period's (and the previous period's) first responses and resolutions, in one table.
CREATE OR REPLACE TEMP TABLE rt_f AS
WITH ch AS (SELECT number, channel FROM tickets)
SELECT 'fr' AS what, f.ticket, f.ts, f.hours, f.team, ch.channel
FROM first_responses f JOIN ch ON ch.number = f.ticket
WHERE f.ts >= $prev_since AND f.ts < $until AND NOT f.excluded
  AND ($team = '' OR f.team = $team) AND ($channel = '' OR ch.channel = $channel)
UNION ALL
SELECT 'res', r.ticket, r.ts, r.hours, r.team, ch.channel
FROM resolutions r JOIN ch ON ch.number = r.ticket
WHERE r.ts >= $prev_since AND r.ts < $until AND NOT r.excluded AND r.answered
  AND ($team = '' OR r.team = $team) AND ($channel = '' OR ch.channel = $channel);

-- section: overall
-- title: Overview, with the previous period
-- title.id: Ringkasan, dibanding periode sebelumnya
-- kind: metrics
WITH fr AS (SELECT ts >= $since AS cur, hours AS h FROM rt_f WHERE what = 'fr'),
     rs AS (SELECT ts >= $since AS cur, hours AS h FROM rt_f WHERE what = 'res')
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
SELECT coalesce(channel, '–') AS channel,
       count(*) FILTER (WHERE what = 'fr') AS responded,
       median(hours) FILTER (WHERE what = 'fr') AS first_response_median_hours,
       quantile_cont(hours, 0.9) FILTER (WHERE what = 'fr') AS first_response_p90_hours,
       count(*) FILTER (WHERE what = 'res') AS resolved,
       median(hours) FILTER (WHERE what = 'res') AS resolution_median_hours,
       quantile_cont(hours, 0.9) FILTER (WHERE what = 'res') AS resolution_p90_hours
FROM rt_f WHERE ts >= $since GROUP BY ALL ORDER BY responded DESC, channel;

-- section: by_team
-- title: By team
-- title.id: Per tim
SELECT coalesce(team, '–') AS team,
       count(*) FILTER (WHERE what = 'fr') AS responded,
       median(hours) FILTER (WHERE what = 'fr') AS first_response_median_hours,
       quantile_cont(hours, 0.9) FILTER (WHERE what = 'fr') AS first_response_p90_hours,
       count(*) FILTER (WHERE what = 'res') AS resolved,
       median(hours) FILTER (WHERE what = 'res') AS resolution_median_hours,
       quantile_cont(hours, 0.9) FILTER (WHERE what = 'res') AS resolution_p90_hours
FROM rt_f WHERE ts >= $since GROUP BY ALL ORDER BY responded DESC, team;

-- section: by_week
-- title: By week (site time zone)
-- title.id: Per minggu (zona waktu situs)
-- chart: line x=week y=first_response_median_hours,resolution_median_hours
SELECT iso_week(ts) AS week,
       count(*) FILTER (WHERE what = 'fr') AS responded,
       median(hours) FILTER (WHERE what = 'fr') AS first_response_median_hours,
       quantile_cont(hours, 0.9) FILTER (WHERE what = 'fr') AS first_response_p90_hours,
       count(*) FILTER (WHERE what = 'res') AS resolved,
       median(hours) FILTER (WHERE what = 'res') AS resolution_median_hours,
       quantile_cont(hours, 0.9) FILTER (WHERE what = 'res') AS resolution_p90_hours
FROM rt_f WHERE ts >= $since GROUP BY ALL ORDER BY week;

-- section: distribution
-- title: Time to first response
-- title.id: Waktu hingga respons pertama
-- chart: bar x=bucket y=tickets
-- label: bucket = Hours to first response | Jam hingga respons pertama
WITH b AS (
    SELECT hours AS h FROM rt_f WHERE what = 'fr' AND ts >= $since
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
    SELECT s.team, s.target, s.business_seconds_to_meet / 3600.0 AS h
    FROM sla AS s JOIN tickets AS t ON t.number = s.ticket
    WHERE s.met_at >= $since AND s.met_at < $until AND s.target IN ('first_response', 'resolution')
      AND ($team = '' OR s.team = $team) AND ($channel = '' OR t.channel = $channel)
      AND s.ticket NOT IN (SELECT ticket FROM excluded_tickets)
)
SELECT coalesce(team, '–') AS team,
       count(*) FILTER (WHERE target = 'first_response') AS responded,
       median(h) FILTER (WHERE target = 'first_response') AS first_response_median_business_hours,
       quantile_cont(h, 0.9) FILTER (WHERE target = 'first_response') AS first_response_p90_business_hours,
       count(*) FILTER (WHERE target = 'resolution') AS resolved,
       median(h) FILTER (WHERE target = 'resolution') AS resolution_median_business_hours,
       quantile_cont(h, 0.9) FILTER (WHERE target = 'resolution') AS resolution_p90_business_hours
FROM s GROUP BY ALL ORDER BY responded DESC, team;
