-- The size caps of a batch's JSON documents, in one pass (their one home, for submit_tasks'
-- payloads and complete_tasks' results): each at most 256 KiB and all of them at most 8 MiB, as
-- text. p_what names one document in the error ("task payload"; the total's error adds an s).
CREATE OR REPLACE FUNCTION fleet.check_json_sizes(p_docs jsonb[], p_what text) RETURNS void
LANGUAGE plpgsql SET search_path = fleet, pg_temp
AS $$
DECLARE
    v_largest integer;
    v_total bigint;
BEGIN
    SELECT max(l), sum(l) INTO v_largest, v_total FROM (SELECT octet_length(d::text) AS l FROM unnest(p_docs) d) s;
    IF v_largest > 262144 THEN
        RAISE EXCEPTION '% larger than 256 KiB', p_what USING ERRCODE = 'program_limit_exceeded';
    END IF;
    IF v_total > 8388608 THEN
        RAISE EXCEPTION '%s larger than 8 MiB in one call', p_what USING ERRCODE = 'program_limit_exceeded';
    END IF;
END;
$$;
