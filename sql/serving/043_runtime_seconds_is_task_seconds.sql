-- daily_metrics.runtime_seconds adds up the durations of the date's tasks (pipeline.tasks.run_audit
-- date_runtime): with two Luigi workers it is more than the wall-clock time the date took.
comment on column warehouse.daily_metrics.runtime_seconds is
    'Task-seconds the date''s published state cost: the durations of the latest successful execution of each of its tasks, added up (with several Luigi workers, more than the wall-clock time). Null: not measured.';
