-- Least privilege for the lock messages. 050 made ecomm_writer a member of pg_read_all_stats so that a publish
-- waiting for a lock could name the holder's state ("idle in transaction"); that role also shows every
-- session's statement on the cluster (and pg_stat_statements) to the pipeline's login. ecomm_writer now gets
-- pipeline_lock.sessions() instead: the sessions of this database with their user, application, state and
-- transaction start, and the statement only of the sessions holding a pipeline lock (the pipeline's own: only
-- ecomm_writer can take one). It runs with its owner's rights, the migrating role's: a role that cannot see
-- other roles' sessions itself (a managed Postgres's admin role outside pg_read_all_stats) is told so, and the
-- messages then show no state for those sessions. The membership 050 granted is revoked, whoever granted it; a
-- role that may not revoke it is told which revoke a superuser runs.
create or replace function pipeline_lock.sessions()
returns table (pid integer, usename name, application_name text, state text, xact_start timestamptz, query text)
language sql stable security definer
set search_path = pg_catalog, pg_temp
as $$
    select a.pid, a.usename, a.application_name, a.state, a.xact_start,
        case when a.state is not null and exists (
                select 1 from pg_locks as r
                where r.pid = a.pid and r.locktype = 'relation' and r.granted and r.mode = 'RowShareLock'
                    and r.database = a.datid and r.relation = 'pipeline_lock.locks'::regclass)
            then a.query end
    from pg_stat_activity as a
    where a.datid = (select oid from pg_database where datname = current_database())
$$;
revoke all on function pipeline_lock.sessions() from public;
grant execute on function pipeline_lock.sessions() to ecomm_writer;
do $$
declare
    grantor name;
begin
    if not pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') then
        raise notice 'lock messages will not show the state of other roles'' sessions: % cannot see it; as a'
            ' superuser run grant pg_read_all_stats to % (docs/serving.md, locks)', current_user, current_user;
    end if;
    for grantor in
        select g.rolname from pg_auth_members as m join pg_roles as g on g.oid = m.grantor
        where m.roleid = 'pg_read_all_stats'::regrole and m.member = 'ecomm_writer'::regrole
    loop
        begin
            if current_setting('server_version_num')::int >= 160000 then
                execute format('revoke pg_read_all_stats from ecomm_writer granted by %I', grantor);
            else
                execute 'revoke pg_read_all_stats from ecomm_writer';
            end if;
        exception when insufficient_privilege or invalid_grant_operation or feature_not_supported then
            raise notice 'ecomm_writer is still a member of pg_read_all_stats (granted by %): % may not revoke it;'
                ' as a superuser run revoke pg_read_all_stats from ecomm_writer granted by % (docs/security.md)',
                grantor, current_user, grantor;
        end;
    end loop;
    if pg_has_role('ecomm_writer', 'pg_read_all_stats', 'USAGE') and not exists (
            select 1 from pg_auth_members
            where roleid = 'pg_read_all_stats'::regrole and member = 'ecomm_writer'::regrole) then
        raise notice 'ecomm_writer reads every session''s statement through a role it is a member of (pg_monitor?):'
            ' that role''s membership is not this migration''s to revoke (docs/security.md)';
    end if;
end
$$;
