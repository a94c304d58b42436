-- A publish (or a compaction) that waits for a lock names the sessions holding it: who, in which state
-- ("idle in transaction"), since when and their last statement, from pg_stat_activity. It looks as
-- ecomm_writer (`set local role` in the publish transaction), and PostgreSQL shows another role's sessions'
-- state, transaction start and statement only to members of the predefined role pg_read_all_stats: without
-- it the message named every BI session reading the table alike, the idle one an operator should end among
-- them. A role that may not grant it (a managed Postgres's admin role without ADMIN on it) is told so and
-- the grant is left to a superuser (docs/serving.md, "Locks: a read-only login cannot stop publishing").
do $$
begin
    if pg_has_role(current_user, 'pg_read_all_stats', 'MEMBER WITH ADMIN OPTION') then
        execute 'grant pg_read_all_stats to ecomm_writer';
    else
        raise notice 'ecomm_writer not granted pg_read_all_stats: % may not grant it; as a superuser run'
            ' grant pg_read_all_stats to ecomm_writer (docs/serving.md, locks)', current_user;
    end if;
end
$$;
