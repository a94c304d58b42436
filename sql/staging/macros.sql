-- Staging macros: the parsing rules every staging model shares (created as temp macros per connection).
-- Not a model: no grain, no partition. Timestamps assume the session TimeZone is UTC (sqlrun.connect).

-- Text as received -> NULL when empty or blank, else trimmed. The common case (first and last
-- characters printable ASCII, not a space) needs no trim: skipping it saves a string copy per value.
create or replace temp macro clean_text(value) as (
    case
        when ascii(value) between 33 and 126 and ascii(right(value, 1)) between 33 and 126 then value
        else nullif(trim(value), '')
    end
);

-- ISO 8601 text ('2025-12-14T17:30:00', '2025-12-14 17:30:00', '...Z', '...+01:00', date only) or
-- epoch seconds (9-10 digits) -> naive UTC TIMESTAMP; anything else -> NULL. Text without an offset
-- is taken as UTC. The date prefix test keeps DuckDB's special words ('infinity', 'epoch') out.
create or replace temp macro utc_timestamp(value) as (
    case
        -- fast path: 'YYYY-MM-DDTHH:MM:SS' has no room for an offset, so the plain TIMESTAMP parser
        -- gives the same value at a fraction of the time-zone-aware parser's cost
        when value like '____-__-__T__:__:__' or value like '____-__-__ __:__:__'
            then try_cast(value as timestamp)
        when value like '____-__-__%'
            then try_cast(value as timestamptz)::timestamp
        when length(value) between 9 and 10 and regexp_full_match(value, '[0-9]+')
            then to_timestamp(value::bigint)::timestamp
    end
);

-- A number as text -> DECIMAL(38, 10), or NULL when it is not a number (or has > 28 integer digits).
create or replace temp macro number_value(value) as try_cast(value as decimal(38, 10));

-- Whether a parsed number is a whole number that fits INTEGER.
create or replace temp macro is_integer_value(value) as (
    value = trunc(value) and value between -2147483648 and 2147483647
);

-- Whether a parsed number is money: at most 2 decimals and within DECIMAL(18, 2).
create or replace temp macro is_money_value(value) as (
    value = round(value, 2) and abs(value) < 10000000000000000
);

-- A catalog API id (JSON number as text) -> 'PREFIX_0001'; ids of 5+ digits are kept whole.
create or replace temp macro catalog_id(prefix, api_id) as (
    case
        when regexp_full_match(api_id, '[0-9]+')
            then prefix || lpad(api_id, greatest(4, length(api_id))::integer, '0')
    end
);
