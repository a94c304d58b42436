-- Raw macros: what landing (and staging, for the catalogs it reads from `record`) needs to keep a field
-- as the file wrote it (created as temp macros per connection).

-- A JSON number's text as the record writes it (`key`: a top-level key), else `value` (the field as
-- json_extract_string gives it). DuckDB reads a JSON number with a fraction or an exponent as a double
-- and prints that: 9.990000000000000000001 as 9.99, 4.9999999999999999999 as 5.0, 1e-400 as 0.0, and
-- the rules would judge a value the file does not hold (or quote one it does not hold: an id `1E2` as
-- 100.0). Only text that could be a printed double (starting with '-' or a digit, with a '.', 'e' or
-- 'E' in it) is looked up, and only where the key occurs once in the record: a nested or escaped
-- "key" makes the written number unknowable (then `value`, as before). A string stays `value`.
create or replace temp macro json_number_text(record, key, value) as (
    case
        when value is null or not (ascii(value) = 45 or ascii(value) between 48 and 57)
            or not (contains(value, '.') or contains(value, 'e') or contains(value, 'E')) then value
        when strpos(record, '"' || key || '"') = 0 then value
        when strpos(substr(record, strpos(record, '"' || key || '"') + length(key) + 2), '"' || key || '"') > 0
            then value
        else coalesce(nullif(regexp_extract(
            substr(record, strpos(record, '"' || key || '"') + length(key) + 2), '^\s*:\s*(-?[0-9][0-9.eE+-]*)', 1
        ), ''), value)
    end
);
