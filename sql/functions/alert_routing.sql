-- What a fleet file's `alert_routes` and `silence_windows` (fleet.agents.config, issue #18) do.
--
-- Routes: an agent's alerts notify only the channels its routes name (the log channel always:
-- it is the record). One BEFORE INSERT trigger on fleet.notifications drops the rows of other
-- channels, so every path that queues notices (the health evaluation, fleet.raise_alert,
-- fleet.clear_alert, the Python alert store) is routed in one place. No routes: every channel.
CREATE OR REPLACE FUNCTION fleet.route_notification() RETURNS trigger
LANGUAGE plpgsql SET search_path = fleet, pg_temp
AS $$
DECLARE
    v_routes jsonb;
BEGIN
    IF NEW.channel = 'log' OR NEW.alert_id IS NULL THEN
        RETURN NEW;
    END IF;
    SELECT g.config -> 'alert_routes' INTO v_routes
    FROM alerts a JOIN agents g ON g.agent_id = a.agent_id
    WHERE a.alert_id = NEW.alert_id;
    IF jsonb_typeof(v_routes) = 'array' AND jsonb_array_length(v_routes) > 0 AND NOT v_routes ? NEW.channel THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END;
$$;

DROP TRIGGER IF EXISTS notifications_routed ON fleet.notifications;
CREATE TRIGGER notifications_routed BEFORE INSERT ON fleet.notifications
    FOR EACH ROW EXECUTE FUNCTION fleet.route_notification();

-- Silence windows: weekly, in UTC, [{days: [mon, ...], start: "HH:MM", end: "HH:MM"}]; an end
-- before the start runs past midnight into the next day. While one is open the health
-- evaluation sends none of the agent's opened notices nor reminders; an alert still open when
-- the window ends is notified then (step 6 of fleet.evaluate_health). A malformed window (the
-- config was edited by hand) is ignored rather than allowed to break the evaluation.
CREATE OR REPLACE FUNCTION fleet.in_silence_window(p_config jsonb, p_at timestamptz) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE COST 1000
AS $$
    SELECT coalesce(bool_or(CASE
        WHEN jsonb_typeof(w -> 'days') <> 'array'
             OR NOT (w ->> 'start') ~ '^([01][0-9]|2[0-3]):[0-5][0-9]$'
             OR NOT (w ->> 'end') ~ '^([01][0-9]|2[0-3]):[0-5][0-9]$' THEN false
        WHEN (w ->> 'start')::time < (w ->> 'end')::time THEN
             (w -> 'days') ? d.today AND d.tod >= (w ->> 'start')::time AND d.tod < (w ->> 'end')::time
        ELSE ((w -> 'days') ? d.today AND d.tod >= (w ->> 'start')::time)
             OR ((w -> 'days') ? d.yesterday AND d.tod < (w ->> 'end')::time)
    END), false)
    FROM jsonb_array_elements(CASE WHEN jsonb_typeof(p_config -> 'silence_windows') = 'array'
                                   THEN p_config -> 'silence_windows' ELSE '[]'::jsonb END) w
    CROSS JOIN (
        SELECT (p_at AT TIME ZONE 'UTC')::time AS tod,
               (ARRAY['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'])[extract(dow FROM p_at AT TIME ZONE 'UTC')::int + 1] AS today,
               (ARRAY['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'])[(extract(dow FROM p_at AT TIME ZONE 'UTC')::int + 6) % 7 + 1] AS yesterday
    ) d
$$;
