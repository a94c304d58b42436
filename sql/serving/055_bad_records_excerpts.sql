-- quarantine.bad_records quotes a long bad value in part (its first characters; raw_record keeps it whole): the
-- comments of record_id, message and failing_value said they hold the value as received.
comment on column quarantine.bad_records.record_id is
    'The record''s id as received (may be missing or malformed); of an id longer than a key can hold, its first'
    ' characters (raw_record has it whole).';
comment on column quarantine.bad_records.message is
    'Reason, failing value and detail for a person; a long value is quoted by its first 200 characters, then'
    ' its length: … (1,000,000 characters).';
comment on column quarantine.bad_records.failing_value is
    'The value that failed the rule, as text; a long value is its first 200 characters, then its length:'
    ' … (1,000,000 characters) (raw_record has it whole).';
