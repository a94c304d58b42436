-- Roles: ecomm_reader (BI, read only), ecomm_writer (only what publishing needs) and bi_reader, a
-- LOGIN member of ecomm_reader. Roles are cluster-wide, so they are created only when missing.
-- No password is ever set here: the embedded server trusts local connections; on any other server
-- the DBA sets bi_reader's password (ALTER ROLE bi_reader PASSWORD ...) or clients use ~/.pgpass.
do $$
begin
    if not exists (select 1 from pg_roles where rolname = 'ecomm_reader') then
        create role ecomm_reader nologin;
    end if;
    if not exists (select 1 from pg_roles where rolname = 'ecomm_writer') then
        create role ecomm_writer nologin;
    end if;
    if not exists (select 1 from pg_roles where rolname = 'bi_reader') then
        create role bi_reader login;
    end if;
    if not exists (
        select 1 from pg_auth_members as m
        where m.roleid = 'ecomm_reader'::regrole and m.member = 'bi_reader'::regrole
    ) then
        grant ecomm_reader to bi_reader;
    end if;
end
$$;

comment on role ecomm_reader is 'Read-only access to the warehouse and audit schemas (BI tools, analysts).';
comment on role ecomm_writer is 'What pipeline.serving.publish needs: DML on the serving tables and ownership of the partitioned facts.';
comment on role bi_reader is 'Login for BI tools; member of ecomm_reader. Its password is set by the DBA, never by the repository.';

-- Nobody but owners creates objects in public (already the default since PostgreSQL 15).
revoke create on schema public from public;

grant usage on schema warehouse, audit to ecomm_reader, ecomm_writer;
grant select on all tables in schema warehouse, audit to ecomm_reader;
alter default privileges in schema warehouse, audit grant select on tables to ecomm_reader;

grant select, insert, update, delete on all tables in schema warehouse, audit to ecomm_writer;
revoke insert, update, delete on audit.schema_migrations from ecomm_writer;
grant usage, select on all sequences in schema warehouse, audit to ecomm_writer;
alter default privileges in schema warehouse, audit grant select, insert, update, delete on tables to ecomm_writer;
alter default privileges in schema warehouse, audit grant usage, select on sequences to ecomm_writer;
-- publish creates each date's partition as a new table and attaches it: that needs CREATE on the
-- schema and ownership of the partitioned tables (attach/detach are owner-only operations).
grant create on schema warehouse to ecomm_writer;

do $$
begin
    if pg_has_role(current_user, 'ecomm_writer', 'MEMBER') then
        alter table warehouse.fact_orders_all owner to ecomm_writer;
        alter table warehouse.fact_events_all owner to ecomm_writer;
        -- partitions ecomm_writer creates later are readable by BI too
        alter default privileges for role ecomm_writer in schema warehouse grant select on tables to ecomm_reader;
    else
        raise warning 'role % cannot act as ecomm_writer: fact tables keep their owner, so publish must run as that owner', current_user;
    end if;
end
$$;
