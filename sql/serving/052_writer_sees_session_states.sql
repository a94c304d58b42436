-- Least privilege for the lock messages. 050 made ecomm_writer a member of pg_read_all_stats so that a publish
-- waiting for a lock could name the holder's state ("idle in transaction"); that role also shows every
-- session's statement on the cluster (and pg_stat_statements) to the pipeline's login. ecomm_writer now gets
-- pipeline_lock.sessions() instead: every session's user, application, state and transaction start, and the
-- statement only of the sessions holding a pipeline lock (the pipeline's own: only ecomm_writer can take
-- one). It runs with its owner's rights, the migrating role's: a role that cannot see other roles' sessions
-- itself (a managed Postgres's admin role outside pg_read_all_stats) is told so, and the messages then name
-- the sessions without their state. The membership 050 granted is revoked; a role that may not revoke it is
-- told to leave that to a superuser.
create or replace function pipeline_lock.sessions()
returns table (pid integer, usename name, application_name text, state text, xact_start timestamptz, query text)
language sql stable security definer
set search_path = pg_catalog, pg_temp
as $$
    select a.pid, a.usename, a.application_name, a.state, a.xact_start,
        case when exists (select 1 from pg_locks as r
                          where r.pid = a.pid and r.locktype = 'relation' and r.granted
                              and r.relation = 'pipeline_lock.locks'::regclass and r.mode = 'RowShareLock')
            then a.query end
    from pg_stat_activity as a
$$;
revoke all on function pipeline_lock.sessions() from public;
grant execute on function pipeline_lock.sessions() to ecomm_writer;
do $$
begin
    if not pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') then
        raise notice 'lock messages will not show the state of other roles'' sessions: % cannot see it; as a'
            ' superuser run grant pg_read_all_stats to % (docs/serving.md, locks)', current_user, current_user;
    end if;
    if pg_has_role('ecomm_writer', 'pg_read_all_stats', 'MEMBER')
            and pg_has_role(current_user, 'pg_read_all_stats', 'MEMBER WITH ADMIN OPTION') then
        execute 'revoke pg_read_all_stats from ecomm_writer';  -- a grant by another grantor stays: said below
    end if;
    if pg_has_role('ecomm_writer', 'pg_read_all_stats', 'MEMBER') then
        raise notice 'ecomm_writer is still a member of pg_read_all_stats: % may not revoke it; as a superuser run'
            ' revoke pg_read_all_stats from ecomm_writer (docs/security.md)', current_user;
    end if;
end
$$;
