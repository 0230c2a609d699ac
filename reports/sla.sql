-- title: SLA compliance
-- title.id: Kepatuhan SLA
-- description: SLA targets met and breached per policy and team, the breaches and the near misses (met in the last quarter of the time allowed), every next-response cycle and every resolution counted, as of now.
-- description.id: Target SLA yang terpenuhi dan dilanggar per kebijakan dan tim, daftar pelanggaran dan yang nyaris dilanggar; setiap siklus respons berikutnya dan setiap penyelesaian dihitung.
-- param: since date = monday-28d  First day of the period (site time zone)
-- param: until date = monday      Day after the period (site time zone)
-- param: team text = ''           Only this team (empty: all teams)
--
-- Definitions (README "Report definitions"):
-- The clocks are computed when the report runs, from the history, as of now (not as of the
-- last `tix escalate`), so every section agrees: one row per ticket, target and cycle; every
-- next-response cycle and every resolution (episode) is a clock of its own. First response
-- and next response are met by an agent reply actually sent (not an auto-reply, not a reply
-- whose sending was given up); resolution by resolving a ticket that had a reply sent.
-- counted    a clock met on time in the period, or breached with its due time in the period
--            (so each clock counts once, in one period, and a past period never changes);
--            clocks still running on time, or stopped on time without being met, are not.
-- compliance = met on time / counted. A near miss was met on time, in the last 25% of its window.
-- overdue    from the due time to when the clock was met or stopped (the ticket was resolved
--            or closed without meeting it), or to now, or to the end of the period: the first.
--            A breach's met/stopped time after the period is not shown (the past stays as it was).
-- team       the ticket's team (and assignee) when the clock fell due (breached) or was met.
-- Tickets tagged with one of `reports: exclude_tags` (spam, automatic mail) are left out.

-- section: setup
-- kind: setup
-- requires: sla
CREATE OR REPLACE TEMP TABLE sla_p AS
SELECT s.*, NOT s.breached AND s.met_at > s.due_at - (s.due_at - s.started_at) * 0.25 AS near_miss,
       hours_between(s.due_at, least(coalesce(s.met_at, s.stopped_at, $now), $now, $until)) AS overdue_hours
FROM sla AS s
WHERE ((NOT s.breached AND s.met_at >= $since AND s.met_at < $until)
       OR (s.breached AND s.due_at >= $since AND s.due_at < $until))
  AND ($team = '' OR s.team = $team) AND s.ticket NOT IN (SELECT ticket FROM excluded_tickets);

-- section: by_policy
-- title: By policy and target
-- title.id: Per kebijakan dan target
-- requires: sla
SELECT policy, target, count(*) AS measured,
       count(*) FILTER (WHERE NOT breached) AS met,
       count(*) FILTER (WHERE breached) AS breached,
       count(*) FILTER (WHERE near_miss) AS near_miss,
       count(*) FILTER (WHERE NOT breached) / count(*) AS compliance
FROM sla_p GROUP BY policy, target ORDER BY policy, list_position(['first_response', 'next_response', 'resolution'], target);

-- section: by_team
-- title: Compliance by team
-- title.id: Kepatuhan per tim
-- requires: sla
-- chart: hbar x=team y=compliance
SELECT coalesce(team, '–') AS team, count(*) AS measured,
       count(*) FILTER (WHERE NOT breached) AS met,
       count(*) FILTER (WHERE breached) AS breached,
       count(*) FILTER (WHERE NOT breached) / count(*) AS compliance
FROM sla_p
GROUP BY ALL ORDER BY compliance, team;

-- section: breaches
-- title: Breaches
-- title.id: Pelanggaran
-- requires: sla
-- limit: 25
SELECT s.ticket, t.subject, coalesce(s.team, '–') AS team, s.assignee, s.policy, s.target, s.cycle, s.due_at,
       CASE WHEN s.met_at < $until THEN s.met_at END AS met_at,
       CASE WHEN s.stopped_at < $until THEN s.stopped_at END AS stopped_at,
       round(s.overdue_hours, 1) AS overdue_hours
FROM sla_p AS s JOIN tickets AS t ON t.number = s.ticket
WHERE s.breached
ORDER BY overdue_hours DESC, s.ticket, s.target, s.cycle;

-- section: near_misses
-- title: Near misses
-- title.id: Nyaris dilanggar
-- requires: sla
-- limit: 25
SELECT s.ticket, t.subject, coalesce(s.team, '–') AS team, s.assignee, s.policy, s.target, s.due_at, s.met_at
FROM sla_p AS s JOIN tickets AS t ON t.number = s.ticket
WHERE s.near_miss
ORDER BY s.due_at - s.met_at, s.ticket;
