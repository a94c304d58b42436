"""E-commerce analytics warehouse: Luigi tasks over DuckDB and a Parquet lake, served from Postgres."""
