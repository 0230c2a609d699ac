-- title: Agents
-- title.id: Agen
-- description: Per agent (the ticket's assignee): tickets handled (answered or resolved in the period), resolved, replies on those tickets, first-response and resolution medians, reopen rate, and open tickets now.
-- description.id: Per agen (penanggung jawab tiket): tiket ditangani, diselesaikan, balasan, median respons pertama dan penyelesaian, tingkat buka ulang, dan tiket terbuka saat ini.
-- param: since date = monday-7d  First day of the period (site time zone)
-- param: until date = monday     Day after the period (site time zone)
-- param: team text = ''          Only this team (empty: all teams)
--
-- Attribution is by current assignee. `replies` counts the messages sent on the agent's tickets
-- handled in the period (the tickets view has no per-author reply counts).

-- section: agents
-- title: Per agent
-- title.id: Per agen
-- chart: hbar x=agent y=handled
WITH t AS (
    SELECT *,
           first_response_at >= $since AND first_response_at < $until AS answered,
           resolved_at >= $since AND resolved_at < $until AS closed_now
    FROM tickets
    WHERE ($team = '' OR team = $team)
), handled AS (
    SELECT coalesce(assignee, '–') AS agent,
           count(*) AS handled,
           count(*) FILTER (WHERE closed_now) AS resolved,
           sum(messages_out) AS replies,
           median(hours_between(created_at, first_response_at)) FILTER (WHERE answered) AS first_response_median_hours,
           median(hours_between(created_at, resolved_at)) FILTER (WHERE closed_now) AS resolution_median_hours,
           count(*) FILTER (WHERE closed_now AND reopened > 0) AS reopened,
           count(*) FILTER (WHERE closed_now AND reopened > 0) / nullif(count(*) FILTER (WHERE closed_now), 0) AS reopen_rate
    FROM t WHERE answered OR closed_now
    GROUP BY ALL
), open_now AS (
    SELECT coalesce(assignee, '–') AS agent, count(*) AS assigned_open
    FROM t WHERE status IN ('new', 'open', 'pending') GROUP BY ALL
)
SELECT agent, coalesce(handled, 0) AS handled, coalesce(resolved, 0) AS resolved, coalesce(replies, 0) AS replies,
       first_response_median_hours, resolution_median_hours, coalesce(reopened, 0) AS reopened, reopen_rate,
       coalesce(assigned_open, 0) AS assigned_open
FROM handled FULL JOIN open_now USING (agent)
ORDER BY handled DESC, agent;
