-- docker compose only: the logins of the compose services, each with the least it needs.
-- The postgres image runs this once, when it initialises an empty data volume
-- (/docker-entrypoint-initdb.d, psql as POSTGRES_USER on POSTGRES_DB), with the passwords from
-- .env that docker-compose.yml passes to the postgres service:
--   ecomm_pipeline  (ECOMM_PIPELINE_PASSWORD) the worker: a member of ecomm_writer only
--                   (publishing's DML, the facts it owns); no superuser, createdb or createrole.
--   bi_reader       (BI_READER_PASSWORD) BI tools: a member of ecomm_reader only (read-only).
-- The serving migrations (sql/serving/, applied by the one-shot `migrate` service as POSTGRES_USER)
-- find these roles, keep them and their passwords, and grant ecomm_reader / ecomm_writer their
-- privileges. Changing a password later: ALTER ROLE ... PASSWORD as POSTGRES_USER (this file runs
-- only on an empty volume).
\set ON_ERROR_STOP on
\getenv pipeline_password ECOMM_PIPELINE_PASSWORD
\getenv bi_password BI_READER_PASSWORD
\if :{?pipeline_password}
\else
\set pipeline_password ''
\endif
\if :{?bi_password}
\else
\set bi_password ''
\endif
select :'pipeline_password' = '' or :'bi_password' = '' as passwords_missing \gset
\if :passwords_missing
do $$ begin
    raise exception 'ECOMM_PIPELINE_PASSWORD and BI_READER_PASSWORD must be set: copy .env.example to .env';
end $$;
\endif

select format('create role %I nologin', name) from unnest(array['ecomm_reader', 'ecomm_writer']) as name
 where not exists (select from pg_roles where rolname = name) \gexec
select format('create role %I login', name) from unnest(array['bi_reader', 'ecomm_pipeline']) as name
 where not exists (select from pg_roles where rolname = name) \gexec

select format('alter role %I with login nosuperuser nocreatedb nocreaterole noreplication password %L', name, secret)
  from (values ('bi_reader', :'bi_password'), ('ecomm_pipeline', :'pipeline_password')) as logins (name, secret) \gexec
grant ecomm_reader to bi_reader;
grant ecomm_writer to ecomm_pipeline;
