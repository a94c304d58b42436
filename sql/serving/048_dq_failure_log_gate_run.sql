-- audit.dq_failure_log.run_id names the run whose quality gate produced the outcomes (the lake's dq_results
-- record it), not the run that published them: a restatement killed after its gate is published by a later
-- run, whose id the log used to carry.
comment on column audit.dq_failure_log.run_id is 'Pipeline run whose quality gate produced the outcomes (audit.pipeline_runs.run_id); for results gated before the lake recorded it, the run that published them (rebuild_... when rebuild-serving replayed them).';
