-- Staging macros: the parsing rules every staging model shares (created as temp macros per connection).
-- Not a model: no grain, no partition. Timestamps assume the session TimeZone is UTC (sqlrun.connect).
-- One parser per kind of value, used by every source: a value means the same wherever it arrives, and
-- what is not a clean value of its type is NULL here (the models quarantine it with a reason).

-- The characters trimmed from both ends of every text value: Unicode White_Space (space, tab, line
-- feed, vertical tab, form feed, carriage return, U+0085, U+00A0, U+1680, U+2000-U+200A, U+2028,
-- U+2029, U+202F, U+205F, U+3000) plus the invisible zero-width space U+200B and byte order mark
-- U+FEFF. Written with chr() so that the file shows every one; DuckDB folds it to one constant.
create or replace temp macro unicode_whitespace() as (
    chr(32) || chr(9) || chr(10) || chr(11) || chr(12) || chr(13) || chr(133) || chr(160) || chr(5760)
    || chr(8192) || chr(8193) || chr(8194) || chr(8195) || chr(8196) || chr(8197) || chr(8198)
    || chr(8199) || chr(8200) || chr(8201) || chr(8202) || chr(8203) || chr(8232) || chr(8233)
    || chr(8239) || chr(8287) || chr(12288) || chr(65279)
);

-- Text as received -> NULL when empty or only whitespace, else trimmed of unicode_whitespace() at both
-- ends. The common case (first and last characters printable ASCII, not a space) needs no trim:
-- skipping it saves a string copy per value. The last character is `value[-1]` (a code point), not
-- right(value, 1), which cost ~40 ns a value: half of staging's events pass went to this test.
create or replace temp macro clean_text(value) as (
    case
        when ascii(value) between 33 and 126 and ascii(value[-1]) between 33 and 126 then value
        else nullif(trim(value, unicode_whitespace()), '')
    end
);

-- Text in lower case, unless lowering changes its length in bytes: a letter outside ASCII that lowers
-- to an ASCII one (U+0130 'İ' to 'i', the Kelvin sign to 'k') would make a look-alike such as 'PAİD'
-- a valid 'paid'. The values it is for (statuses, event types) are ASCII: such text stays as written
-- and fails its rule. strlen is stored with the string: no scan.
create or replace temp macro lower_ascii(value) as (
    case when strlen(lower(value)) = strlen(value) then lower(value) else value end
);

-- Whether text holds a control character: U+0000-U+001F (NUL, tab, line breaks ...) or U+007F-U+009F.
-- The regular expression costs ~150 ns a value; control_character_screen(value) first, false for
-- almost every value, costs a third: JSON escaping lengthens a text with a U+0000-U+001F character
-- (or a quote or backslash), any non-ASCII character (U+0080-U+009F among them) makes the length in
-- characters differ from the length in bytes, and DEL is looked up directly. Only a value the screen
-- flags is matched exactly.
create or replace temp macro control_character_screen(value) as (
    strlen(to_json(value)::varchar) <> strlen(value) + 2 or strlen(value) <> length(value) or contains(value, chr(127))
);
create or replace temp macro has_control_character(value) as regexp_matches(value, '[\x00-\x1f\x7f-\x9f]');
-- Whether an id holds a character it cannot hold (id_problem): a control character, or an invisible Unicode
-- format character (\p{Cf}: U+00AD soft hyphen, U+200B zero-width space, U+200E/F direction marks, U+2060 word
-- joiner ...), with which an id prints like another one. Every such character is outside ASCII, so
-- control_character_screen flags the value first: the usual ASCII id never reaches the regular expression.
create or replace temp macro has_id_unfit_character(value) as regexp_matches(value, '[\x00-\x1f\x7f-\x9f\p{Cf}]');

-- An id in Unicode Normalization Form C (NFC): text that is the same characters, written precomposed or
-- with combining marks ('USER_É1' with U+00C9, or with 'E' and U+0301), is one id, as it prints the same.
-- Not NFKC, which would also fold characters that look different and that a sender may tell apart
-- ('ＵＳＥＲ' to 'USER', '²' to '2', 'ﬁ' to 'fi'): such an id stays itself, and the gate names it when the
-- catalog does not list it (docs/pipeline.md, Ids). Only text with a non-ASCII byte is normalised:
-- nfc_normalize checks that itself (a byte loop) and returns ASCII text as it is, without a copy. Any screen
-- written here cost more (CASE on strlen <> length: 3x the added time; a flag from the row's ids together
-- made the passes that read only the id scan all of them).
create or replace temp macro nfc_id(value) as nfc_normalize(value);

-- Why a cleaned id cannot be a key (NULL: it can). Ids are opaque text, but a control character or an
-- invisible format character makes a second id that prints like the first (and Postgres cannot store NUL);
-- an id longer than max_length (characters; [model] max_id_length) does not fit a Postgres index.
-- `any_control` is has_id_unfit_character of the row's ids together (one screened scan for the usual row
-- without any), so that each id is scanned only in the rare row that has one.
create or replace temp macro id_problem(value, max_length, any_control) as (
    case
        -- strlen (bytes) is free and never below length (characters), which must scan the text
        when strlen(value) > max_length and length(value) > max_length
            then 'longer than ' || max_length || ' characters'
        when any_control and has_control_character(value) then 'contains a control character'
        when any_control and has_id_unfit_character(value)
            then 'contains an invisible format character (such as U+200B, U+00AD, U+200E)'
    end
);

-- Whether text that json_extract_string gave for a field could have come from a JSON value that is not a
-- string: it starts like a number ('-', a digit), an object or an array, or is true/false, or one of the
-- non-finite numbers DuckDB's JSON reader accepts (NaN, Infinity, inf, in any case; Python's json.dumps
-- writes them). The usual text fails this test on its first character (and length: free), and only
-- text that passes it pays for json_type (a second parse of the record).
create or replace temp macro json_maybe_not_string(value) as (
    ascii(value) = 45 or ascii(value) between 48 and 57 or ascii(value) in (91, 123)
    or value in ('true', 'false')
    or (ascii(value) in (73, 78, 105, 110) and strlen(value) in (3, 8) and lower(value) in ('nan', 'inf', 'infinity'))
);

-- A JSON type (json_type) that is not a string, as a message names it (NULL: a string, null, absent).
-- `value` is the field's text (NaN and Infinity are numbers to json_type); `number` names a finite number.
create or replace temp macro json_type_name(type, value, number) as (
    case
        when type is null or type in ('VARCHAR', 'NULL') then null
        when type = 'OBJECT' then 'a JSON object'
        when type = 'ARRAY' then 'a JSON array'
        when type = 'BOOLEAN' then 'a JSON boolean'
        when lower(ltrim(value, '-')) in ('nan', 'inf', 'infinity') then 'a JSON NaN or Infinity'
        else number
    end
);

-- Why a JSON id field is not an id (NULL: it is one). Ids are JSON strings or JSON integers, and the
-- integer 515151 and the string "515151" are the same id (json_extract_string gives both as
-- '515151'); a number with a fraction or an exponent, NaN or Infinity, an object, an array or a boolean
-- is not an id. `value` is the field as json_extract_string gives it, cleaned: json_type is asked only
-- when json_maybe_not_string(value) and the text is not a plain integer.
create or replace temp macro json_id_problem(record, path, value) as (
    case
        when value is null then null
        when not json_maybe_not_string(value) then null
        when regexp_full_match(value, '-?[0-9]+') then null
        else json_type_name(json_type(record, path), value, 'a JSON number with a fraction or an exponent')
    end
);

-- Why a JSON text field is not text (NULL: it is, or it is null or absent): 'a JSON object', 'a JSON
-- array', 'a JSON boolean', 'a JSON number', 'a JSON NaN or Infinity'. json_extract_string gives an object
-- or an array as its JSON text (and a number as DuckDB prints it), which would be published as a name.
-- `value` is the field as json_extract_string gives it, cleaned; it came from `path`, or from `fallback`
-- when `path` is absent or null (a field with two names: product_name or the API's title). json_type is
-- asked only when json_maybe_not_string(value).
create or replace temp macro json_text_problem(record, path, fallback, value) as (
    case
        when value is null then null
        when not json_maybe_not_string(value) then null
        else json_type_name(
            coalesce(nullif(json_type(record, path), 'NULL'), json_type(record, fallback)), value, 'a JSON number'
        )
    end
);

-- The first key that a list of JSON object keys (json_keys) holds twice (NULL: none). An object
-- like {"price": 1, "price": 999} would be read as its first value, silently; staging quarantines it.
-- Takes the key list, not the object, so that the model parses each object once.
create or replace temp macro first_repeated_key(keys) as (
    -- a key whose first position is earlier than its own: a few comparisons per object (list_unique
    -- or list_distinct would build a hash table per object, five times the cost)
    list_filter(keys, lambda key, i: list_position(keys, key) < i)[1]
);

-- A record as exact duplicates compare it: a JSON object's top-level fields by key, whatever their order
-- ({"a":1,"b":2} and {"b":2,"a":1} are the same record, as they are the same fields), each value as JSON
-- (whitespace normalised); a CSV row's struct of columns as its JSON. A list of [key, value] pairs.
create or replace temp macro record_fields(record) as (
    list_transform(
        list_sort(json_keys(to_json(record))),
        lambda key: [key, json_extract(to_json(record), '/' || replace(replace(key, '~', '~0'), '/', '~1'))::varchar]
    )
);

-- A timestamp without an offset is a wall-clock time in the business time zone ([model]
-- business_timezone): -> the naive UTC TIMESTAMP of that instant. UTC (the default) needs no lookup.
create or replace temp macro wall_clock_utc(value, tz) as (
    case when tz = 'UTC' then value else timezone(tz, value)::timestamp end
);

-- Text -> naive UTC TIMESTAMP, or NULL when it is not one of these (strictly):
-- - ISO 8601 (RFC 3339) 'YYYY-MM-DD[T ]HH:MM', '...:SS', '...:SS.fffffffff' (up to 9 decimals, kept to
--   the microsecond): a wall-clock time in the business time zone `tz`;
-- - the same with an offset: 'Z', '+HH', '+HHMM' or '+HH:MM' (or '-'), at most 14:00 and minutes below 60;
-- - epoch seconds (9-10 digits) or epoch milliseconds (13 digits).
-- 'T' and 'Z' may be lower case, as RFC 3339 allows. Hours are 00-23, minutes and seconds 00-59, and the
-- date must exist. Anything else is NULL: a date without a time of day ('2025-12-14': an order or event
-- happens at a time, and midnight would be a guess; timestamp_detail says so), named zones, '+25:00',
-- '24:00:00', DuckDB's special words 'infinity' / 'epoch'.
create or replace temp macro utc_timestamp(value, tz) as (
    case
        -- fast path: the usual shape, parsed by strptime (strict, and cheaper than a regular expression)
        when value like '____-__-__T__:__:__' then wall_clock_utc(try_strptime(value, '%Y-%m-%dT%H:%M:%S'), tz)
        when value like '____-__-__ __:__:__' then wall_clock_utc(try_strptime(value, '%Y-%m-%d %H:%M:%S'), tz)
        -- DuckDB's casts read an upper-case 'T' and 'Z' only: the rare lower-case text is cast again, upper-cased
        when regexp_full_match(
            value,
            '[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])'
            || '[Tt ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,9})?)?'
        ) then wall_clock_utc(coalesce(try_cast(value as timestamp), try_cast(upper(value) as timestamp)), tz)
        when regexp_full_match(
            value,
            '[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])'
            || '[Tt ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,9})?)?'
            || '([Zz]|[+-](0[0-9]|1[0-3])(:?[0-5][0-9])?|[+-]14(:?00)?)'
        ) then coalesce(try_cast(value as timestamptz), try_cast(upper(value) as timestamptz))::timestamp
        when regexp_full_match(value, '[0-9]{9,10}') then make_timestamp(value::bigint * 1000000)
        when regexp_full_match(value, '[0-9]{13}') then make_timestamp(value::bigint * 1000)
    end
);

-- Why a timestamp text that utc_timestamp could not read is not a timestamp, where a rule says more than
-- its reason code (NULL: nothing more to say). Asked only of quarantined rows.
create or replace temp macro timestamp_detail(value) as (
    case
        when regexp_full_match(value, '[0-9]{4}-[0-9]{2}-[0-9]{2}')
            then 'a date without a time of day: the time is required, midnight would be a guess'
    end
);

-- Whether a timestamp text's own local date (the date it was written with, in its own offset or in
-- the business time zone) is on or before a day: such a timestamp is never from that day's future.
-- Epoch values have no local date of their own (false).
create or replace temp macro local_date_on_or_before(value, day) as (
    value like '____-__-__%' and left(value, 10) <= strftime(day, '%Y-%m-%d')
);

-- Whether a number in number_value's grammar has more than 10 decimals once written out: the digits
-- after its point, less the trailing zeros of its digits, less its exponent ('9.99000000001' and
-- '1e-11': 11; '9.9900000000000', '125e-2' and '123000000000e-11': 2). Only a value with an exponent
-- or over 10 characters after its point is counted (the usual value needs no regular expression).
create or replace temp macro more_than_ten_decimals(value) as (
    case
        when not (contains(value, 'e') or contains(value, 'E'))
            and (strpos(value, '.') = 0 or strlen(value) - strpos(value, '.') <= 10) then false
        else length(regexp_extract(value, '\.([0-9]*)', 1))
            - (length(replace(regexp_extract(value, '^[+-]?([0-9.]*)', 1), '.', ''))
               - length(rtrim(replace(regexp_extract(value, '^[+-]?([0-9.]*)', 1), '.', ''), '0')))
            - coalesce(try_cast(regexp_extract(value, '[eE]([+-]?[0-9]+)$', 1) as integer), 0) > 10
    end
);

-- A number as text -> DECIMAL(38, 10), or NULL when it is not a number in the strict grammar: an
-- optional sign, digits with an optional fraction ('10', '10.5', '.5', '10.') and an optional
-- exponent ('1e1', '1E+1'). Underscores, thousands separators, hex, 'inf'/'nan' and inner spaces
-- are not numbers (DuckDB's own cast would read '1_999.00' as 1999). NULL too beyond 28 integer digits,
-- and beyond 10 decimals, which the cast would round: '9.99000000001' is not a price of 9.99, nor
-- '2.00000000001' a quantity of 2 (nor a JSON number's float artefact 0.30000000000000004 a price of 0.30).
create or replace temp macro number_value(value) as (
    case
        when regexp_full_match(value, '[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?')
            and not more_than_ten_decimals(value)
            then try_cast(value as decimal(38, 10))
    end
);

-- Whether a parsed number is a whole number that fits INTEGER.
create or replace temp macro is_integer_value(value) as (
    value = trunc(value) and value between -2147483648 and 2147483647
);

-- Whether a parsed number is money: at most 2 decimals and within DECIMAL(18, 2).
create or replace temp macro is_money_value(value) as (
    value = round(value, 2) and abs(value) < 10000000000000000
);

-- A catalog API id (a JSON integer, or a string of digits, as text) -> 'PREFIX_0001': the number's leading
-- zeros dropped, then zero-padded to 4 digits ('89', '0089' and '00089' are 'PREFIX_0089'); a number of 5+
-- digits is kept whole. NULL for anything else (the model quarantines it as an invalid id).
create or replace temp macro catalog_id(prefix, api_id) as (
    case
        when regexp_full_match(api_id, '[0-9]+')
            then prefix || lpad(ltrim(api_id, '0'), greatest(4, length(ltrim(api_id, '0')))::integer, '0')
    end
);

-- The most characters catalog_id adds to an id: the prefix ('USER_', 'PROD_') and the zero padding of a one-digit
-- number to 4 digits ('1' -> 'PROD_0001').
create or replace temp macro catalog_id_growth() as length('USER_') + 4 - 1;

-- A user or product id as every source means it (orders, events, catalog files and the catalog API): a whole
-- number written in ASCII digits (a JSON integer, or a JSON string or CSV value of digits) is the catalog's
-- numeric id, as catalog_id maps it (89 -> 'PROD_0089'), so that an order's product_id 89 is the product the
-- API lists as id 89; any other text is the id as written. `value`: the id cleaned and in NFC. Only an id
-- that starts with a digit (rare: 'USER_0001' starts with a letter) is matched: text from '0' up to ':'
-- (the character after '9'), which DuckDB compares on the string's stored prefix (ascii() cost 3x that).
create or replace temp macro catalog_key(prefix, value) as (
    case when value >= '0' and value < ':' then coalesce(catalog_id(prefix, value), value) else value end
);

-- Text for audit/bad_records: Postgres text cannot hold NUL (U+0000), and any other control character (an
-- escape sequence, a bell, a line break) would act on the terminal of whoever reads the row in psql or break
-- an export's line: each becomes the six characters \uXXXX, as JSON writes them (deterministic). Only the
-- rare value with one (has_control_character) pays for the replacements.
create or replace temp macro storable_text(value) as (
    case when has_control_character(value) then list_reduce(
        [code for code in range(160) if code < 32 or code >= 127],
        lambda text, code: replace(text, chr(code::integer), printf('\u%04x', code)), value)
    else value end
);

-- A value as a quarantine row quotes it (audit/bad_records: message, failing_value): at most
-- `max_length` characters. A longer value (a 1 MB string that breaks a rule) is its first `max_length`
-- characters, then '…', `quote` and ' (N characters)'; the row's raw_record keeps it whole, once.
-- `quote` is written around the value ('' for none). strlen (bytes, stored with the string) is never
-- below length (characters): the usual short value is not scanned.
create or replace temp macro excerpt(value, max_length, quote) as (
    case
        when strlen(value) <= max_length or length(value) <= max_length then quote || value || quote
        else quote || left(value, max_length) || '…' || quote || ' (' || format('{:,}', length(value)) || ' characters)'
    end
);

-- How many characters of a value audit/bad_records quotes in its message and failing_value (excerpt).
create or replace temp macro excerpt_length() as 200;
