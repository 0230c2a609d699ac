-- title: Agents
-- title.id: Agen
-- description: Per agent: tickets handled (replied to or resolved in the period), resolutions, replies sent, first responses and their median, resolution median, reopens of their resolutions, and open tickets assigned now. Credited to who acted; `--param by=assignee` credits the ticket's current assignee instead.
-- description.id: Per agen: tiket ditangani (dibalas atau diselesaikan dalam periode), penyelesaian, balasan terkirim, respons pertama dan mediannya, median penyelesaian, buka ulang, dan tiket terbuka yang ditugaskan saat ini. Dikreditkan kepada yang bertindak; `--param by=assignee` kepada penanggung jawab saat ini.
-- param: since date = monday-7d  First day of the period (site time zone)
-- param: until date = monday     Day after the period (site time zone)
-- param: team text = ''          Only this team (its team when the agent acted; empty: all teams)
-- param: by text = 'actor'       Credit `actor` (who replied or resolved) or `assignee` (the current assignee)
--
-- Definitions (README "Report definitions"):
-- replies          agent replies sent in the period (`tix reply` by user:NAME); auto-replies,
--                  replies whose sending was given up and messages by rules or the system are
--                  not anybody's replies.
-- first_responses  tickets whose first reply actually sent was this agent's, in the period.
-- resolved         resolutions (new/open/pending -> resolved/closed) the agent made in the
--                  period, of tickets that had a reply sent by then (closing one that never had
--                  a reply counts as handled, not as resolved).
-- reopened         reopens in the period of a ticket whose last resolution was this agent's;
--                  reopen_rate = reopened / resolved (both counted in the period, so a past
--                  period's figures never change).
-- assigned_open    open tickets assigned to the agent now.
-- Tickets tagged with one of `reports: exclude_tags` (spam, automatic mail) are left out.

-- section: setup
-- kind: setup
CREATE OR REPLACE TEMP TABLE agent_f AS
WITH cur AS (SELECT number, assignee FROM tickets)
SELECT 'reply' AS what, r.ticket, r.ts, NULL::DOUBLE AS hours,
       CASE WHEN $by = 'assignee' THEN c.assignee ELSE r.agent END AS agent
FROM replies r JOIN cur c ON c.number = r.ticket
WHERE r.ts >= $since AND r.ts < $until AND NOT r.auto AND NOT r.failed AND r.agent IS NOT NULL
  AND ($team = '' OR r.team = $team) AND r.ticket NOT IN (SELECT ticket FROM excluded_tickets)
UNION ALL
SELECT 'first', f.ticket, f.ts, f.hours, CASE WHEN $by = 'assignee' THEN c.assignee ELSE f.agent END
FROM first_responses f JOIN cur c ON c.number = f.ticket
WHERE f.ts >= $since AND f.ts < $until AND NOT f.excluded AND f.agent IS NOT NULL
  AND ($team = '' OR f.team = $team)
UNION ALL
SELECT CASE WHEN r.answered THEN 'resolved' ELSE 'closed_unanswered' END, r.ticket, r.ts, r.hours,
       CASE WHEN $by = 'assignee' THEN c.assignee ELSE r.agent END
FROM resolutions r JOIN cur c ON c.number = r.ticket
WHERE r.ts >= $since AND r.ts < $until AND NOT r.excluded AND r.agent IS NOT NULL
  AND ($team = '' OR r.team = $team)
UNION ALL
SELECT 'reopened', o.ticket, o.ts, NULL, CASE WHEN $by = 'assignee' THEN c.assignee ELSE o.resolved_by_agent END
FROM reopens o JOIN cur c ON c.number = o.ticket
WHERE o.ts >= $since AND o.ts < $until AND NOT o.excluded AND o.resolved_by_agent IS NOT NULL
  AND ($team = '' OR o.resolved_team = $team);

-- section: agents
-- title: Per agent
-- title.id: Per agen
-- chart: hbar x=agent y=handled
WITH handled AS (
    SELECT coalesce(agent, '–') AS agent,
           count(DISTINCT ticket) FILTER (WHERE what IN ('reply', 'first', 'resolved', 'closed_unanswered')) AS handled,
           count(*) FILTER (WHERE what = 'resolved') AS resolved,
           count(*) FILTER (WHERE what = 'reply') AS replies,
           count(*) FILTER (WHERE what = 'first') AS first_responses,
           median(hours) FILTER (WHERE what = 'first') AS first_response_median_hours,
           median(hours) FILTER (WHERE what = 'resolved') AS resolution_median_hours,
           count(*) FILTER (WHERE what = 'reopened') AS reopened
    FROM agent_f GROUP BY ALL
), open_now AS (
    SELECT coalesce(assignee, '–') AS agent, count(*) AS assigned_open
    FROM tickets
    WHERE status IN ('new', 'open', 'pending') AND ($team = '' OR team = $team) AND NOT excluded(tags)
    GROUP BY ALL
)
SELECT agent, coalesce(handled, 0) AS handled, coalesce(resolved, 0) AS resolved, coalesce(replies, 0) AS replies,
       coalesce(first_responses, 0) AS first_responses, first_response_median_hours, resolution_median_hours,
       coalesce(reopened, 0) AS reopened, reopened / nullif(resolved, 0) AS reopen_rate,
       coalesce(assigned_open, 0) AS assigned_open
FROM handled FULL JOIN open_now USING (agent)
ORDER BY handled DESC, agent;
