"""Helpers the tests share: throwaway Postgres servers, row factories, local HTTP and S3 servers, ops runners."""
