"""The test suite: real DuckDB, real Parquet, real Postgres, real Luigi (see README, Testing)."""
