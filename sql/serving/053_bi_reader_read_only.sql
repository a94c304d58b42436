-- bi_reader could still write: PostgreSQL lets every login create temporary tables (TEMPORARY on the database is
-- PUBLIC's by default) and large objects (lo_create, lo_creat and lo_from_bytea are PUBLIC's; a large object
-- outlives the session, owned by its creator, so a BI login could fill the disk). Three locks, each of them
-- effective alone:
-- 1. TEMPORARY on this database is taken from PUBLIC and given to ecomm_writer: the pipeline's transactions
--    (publish, preload, compaction, rebuild-marts) create their temp tables as that role (set local role); the
--    database's owner keeps it as owner. A BI login gets no TEMPORARY, whatever its session sets.
-- 2. EXECUTE on the functions that create a large object is taken from PUBLIC (the pipeline uses none; libpq's
--    client-side lo_import/lo_creat call the same functions, and the fast-path checks EXECUTE too). Those
--    functions belong to the bootstrap superuser: only a superuser may change their rights.
-- 3. bi_reader's sessions start read-only (default_transaction_read_only): no CREATE of any kind, no
--    lo_create, no write. A session may turn that off again, hence 1 and 2; it still stops a BI tool's
--    accidental write where a DBA could not run 2.
-- Each step this migration's role may not take is told in a notice with the statement to run as a superuser
-- (or as the database's owner) instead, and the rest is applied (docs/security.md, least privilege).
do $$
begin
    if has_database_privilege(current_user, current_database(), 'TEMPORARY WITH GRANT OPTION') then
        execute format('grant temporary on database %I to ecomm_writer', current_database());
        execute format('revoke temporary on database %I from public', current_database());
    end if;
    if exists (
        select 1 from pg_database as d, aclexplode(d.datacl) as a
        where d.datname = current_database() and a.grantee = 0 and a.privilege_type = 'TEMPORARY'
    ) or (select datacl is null from pg_database where datname = current_database()) then
        raise notice 'every login may still create temporary tables here: % may not revoke it; as the database''s'
            ' owner or a superuser run grant temporary on database % to ecomm_writer; revoke temporary on database'
            ' % from public (docs/security.md)', current_user, quote_ident(current_database()),
            quote_ident(current_database());
    end if;
end
$$;

do $$
declare
    creator regprocedure;
    kept text[] := '{}';
begin
    for creator in
        select p.oid::regprocedure from pg_proc as p
        where p.pronamespace = 'pg_catalog'::regnamespace
            and p.prosrc in ('be_lo_create', 'be_lo_creat', 'be_lo_from_bytea')
        order by 1
    loop
        if has_function_privilege(current_user, creator, 'EXECUTE WITH GRANT OPTION') then
            execute format('revoke execute on function %s from public', creator);
        end if;
        if exists (
            select 1 from pg_proc as p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) as a
            where p.oid = creator and a.grantee = 0 and a.privilege_type = 'EXECUTE'
        ) then
            kept := kept || creator::text;
        end if;
    end loop;
    if cardinality(kept) > 0 then
        raise notice 'every login may still create large objects here: % may not revoke it; as a superuser run'
            ' revoke execute on function % from public (docs/security.md)', current_user, array_to_string(kept, ', ');
    end if;
end
$$;

do $$
begin
    alter role bi_reader set default_transaction_read_only = on;
exception when insufficient_privilege then
    raise notice 'bi_reader''s sessions do not start read-only: % may not change the role (%); as a superuser run'
        ' alter role bi_reader set default_transaction_read_only = on (docs/security.md)', current_user, sqlerrm;
end
$$;

comment on role bi_reader is 'Login for BI tools; member of ecomm_reader; its sessions start read-only. Its password is'
    ' set by the DBA, never by the repository.';
