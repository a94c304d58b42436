-- audit.rejected_lines for events: the lines of the day's events file that were not landed.
-- Grain: one row per rejected physical line; partition: load_date / source_table=events.
-- Two kinds: the CSV reader's rejects (csv_rejects: wrong number of columns, invalid UTF-8 ...) and
-- the lines the landing rejected itself before the reader saw them (line_rejects: quoting that does
-- not close on its line). Line numbers count every physical line, the header included.
with reader_rejects as (
    select
        csv_rejects.line::bigint as line_number,
        trim(any_value(csv_rejects.csv_line), E'\r\n') as raw_text,
        string_agg(distinct csv_rejects.error_type || ': ' || csv_rejects.error_message, '; ') as error,
    from csv_rejects
    group by csv_rejects.line
),

landing_rejects as (
    select
        line_rejects.line_number,
        line_rejects.raw_text,
        line_rejects.error,
    from line_rejects
),

rejected as (
    select * from reader_rejects
    union all
    select * from landing_rejects
),

final as (
    select
        $source_file as source_file,
        rejected.line_number,
        -- Postgres text cannot hold NUL: shown as U+FFFD
        replace(rejected.raw_text, chr(0), chr(65533)) as raw_text,
        rejected.error,
    from rejected
)

select * from final
order by final.line_number
