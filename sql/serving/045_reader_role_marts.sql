-- ecomm_reader's comment (005_roles.sql) was written before the marts schema, which 012_marts.sql lets it
-- read too: the comment names every schema the role reads.
comment on role ecomm_reader is 'Read-only access to the warehouse, marts and audit schemas (BI tools, analysts).';
