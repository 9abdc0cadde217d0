-- Run once, by the PostgreSQL image's entrypoint, when the data volume is new.
-- pgvector is not a trusted extension: create it as the superuser here, so the sink's
-- own migrations (CREATE EXTENSION IF NOT EXISTS vector) find it installed.
CREATE EXTENSION IF NOT EXISTS vector;
