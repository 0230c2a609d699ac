-- title: SLA compliance
-- title.id: Kepatuhan SLA
-- description: SLA targets met and breached per policy and team, the breaches and the near misses (met in the last quarter of the time allowed), from the sla view.
-- description.id: Target SLA yang terpenuhi dan dilanggar per kebijakan dan tim, daftar pelanggaran dan yang nyaris dilanggar.
-- param: since date = monday-28d  First day of the period (site time zone)
-- param: until date = monday      Day after the period (site time zone)
-- param: team text = ''           Only this team (empty: all teams)
--
-- Definitions (README "Report definitions"):
-- The clocks are computed when the report runs, from the history, as of now (not as of the
-- last `tix escalate`), so every section agrees: one row per ticket, target and cycle; every
-- next-response cycle and every resolution (episode) is a clock of its own.
-- A clock counts in the period when it was met in it, or fell due in it and was breached
-- (clocks still running on time, or stopped on time without being met, are not counted).
-- compliance = met on time / counted. A near miss was met on time, in the last 25% of its window.
-- Overdue time runs from the due time to when the clock was met, stopped (the ticket was
-- resolved or closed without meeting it), or now / the end of the period, whichever is first.
-- Team: the ticket's team now. Tickets tagged with one of `reports: exclude_tags` are left out.

-- section: by_policy
-- title: By policy and target
-- title.id: Per kebijakan dan target
-- requires: sla
WITH s AS (
    SELECT s.*, t.team FROM sla AS s JOIN tickets AS t ON t.number = s.ticket
    WHERE ((s.met_at >= $since AND s.met_at < $until) OR (s.met_at IS NULL AND s.breached AND s.due_at >= $since AND s.due_at < $until))
      AND ($team = '' OR t.team = $team) AND s.ticket NOT IN (SELECT ticket FROM excluded_tickets)
)
SELECT policy, target, count(*) AS measured,
       count(*) FILTER (WHERE NOT breached) AS met,
       count(*) FILTER (WHERE breached) AS breached,
       count(*) FILTER (WHERE NOT breached AND met_at > due_at - (due_at - started_at) * 0.25) AS near_miss,
       count(*) FILTER (WHERE NOT breached) / count(*) AS compliance
FROM s GROUP BY policy, target ORDER BY policy, list_position(['first_response', 'next_response', 'resolution'], target);

-- section: by_team
-- title: Compliance by team
-- title.id: Kepatuhan per tim
-- requires: sla
-- chart: hbar x=team y=compliance
SELECT coalesce(t.team, '–') AS team, count(*) AS measured,
       count(*) FILTER (WHERE NOT s.breached) AS met,
       count(*) FILTER (WHERE s.breached) AS breached,
       count(*) FILTER (WHERE NOT s.breached) / count(*) AS compliance
FROM sla AS s JOIN tickets AS t ON t.number = s.ticket
WHERE ((s.met_at >= $since AND s.met_at < $until) OR (s.met_at IS NULL AND s.breached AND s.due_at >= $since AND s.due_at < $until))
  AND ($team = '' OR t.team = $team) AND s.ticket NOT IN (SELECT ticket FROM excluded_tickets)
GROUP BY ALL ORDER BY compliance, team;

-- section: breaches
-- title: Breaches
-- title.id: Pelanggaran
-- requires: sla
-- limit: 25
SELECT s.ticket, t.subject, coalesce(t.team, '–') AS team, t.assignee, s.policy, s.target, s.cycle, s.due_at,
       s.met_at, s.stopped_at,
       round(hours_between(s.due_at, coalesce(s.met_at, s.stopped_at, least($now, $until))), 1) AS overdue_hours
FROM sla AS s JOIN tickets AS t ON t.number = s.ticket
WHERE s.breached
  AND ((s.met_at >= $since AND s.met_at < $until) OR (s.met_at IS NULL AND s.breached AND s.due_at >= $since AND s.due_at < $until))
  AND ($team = '' OR t.team = $team) AND s.ticket NOT IN (SELECT ticket FROM excluded_tickets)
ORDER BY overdue_hours DESC, s.ticket;

-- section: near_misses
-- title: Near misses
-- title.id: Nyaris dilanggar
-- requires: sla
-- limit: 25
SELECT s.ticket, t.subject, coalesce(t.team, '–') AS team, t.assignee, s.policy, s.target, s.due_at, s.met_at
FROM sla AS s JOIN tickets AS t ON t.number = s.ticket
WHERE NOT s.breached AND s.met_at >= $since AND s.met_at < $until
  AND s.met_at > s.due_at - (s.due_at - s.started_at) * 0.25
  AND ($team = '' OR t.team = $team) AND s.ticket NOT IN (SELECT ticket FROM excluded_tickets)
ORDER BY s.due_at - s.met_at, s.ticket;
