-- BI logins can take every ordinary connection slot (bi_reader has no connection limit of its own unless an
-- administrator sets one), and the pipeline's login, a member of ecomm_writer and no superuser, is then
-- refused ("remaining connection slots are reserved ..."). PostgreSQL 16 sets aside `reserved_connections`
-- slots for members of the predefined role pg_use_reserved_connections: ecomm_writer is made one, so a server
-- with reserved_connections > 0 always lets a publish in. Older servers have neither; a role that may not
-- grant it (a managed Postgres's admin role without ADMIN on it) is told so and the grant is left to a
-- superuser (docs/serving.md#connection-slots).
do $$
begin
    if current_setting('server_version_num')::int < 160000 then
        return;
    end if;
    if pg_has_role(current_user, 'pg_use_reserved_connections', 'MEMBER WITH ADMIN OPTION') then
        execute 'grant pg_use_reserved_connections to ecomm_writer';
    else
        raise notice 'ecomm_writer not granted pg_use_reserved_connections: % may not grant it; as a superuser run'
            ' grant pg_use_reserved_connections to ecomm_writer (docs/serving.md#connection-slots)', current_user;
    end if;
end
$$;
