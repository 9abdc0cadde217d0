#!/bin/sh
# Temporal's databases and schemas on temporal-db (run by the temporal-schema service of
# compose.yaml with temporalio/admin-tools, before the server starts). Every step is
# idempotent: an existing database is kept and only missing schema versions are applied.
set -eu
: "${POSTGRES_SEEDS:?POSTGRES_SEEDS is required}"
: "${POSTGRES_USER:?POSTGRES_USER is required}"
SQL_PASSWORD="$(cat /run/secrets/temporal_db_password)"
export SQL_PASSWORD
PORT="${DB_PORT:-5432}"
SCHEMA=/etc/temporal/schema/postgresql/v12

until nc -z -w 5 "$POSTGRES_SEEDS" "$PORT"; do
  echo "waiting for $POSTGRES_SEEDS:$PORT"
  sleep 2
done

for db in temporal temporal_visibility; do
  tool() { temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -u "$POSTGRES_USER" -p "$PORT" --db "$db" "$@"; }
  tool create || echo "database $db exists already"
  tool setup-schema -v 0.0
done
temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -u "$POSTGRES_USER" -p "$PORT" --db temporal \
  update-schema -d "$SCHEMA/temporal/versioned"
temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -u "$POSTGRES_USER" -p "$PORT" --db temporal_visibility \
  update-schema -d "$SCHEMA/visibility/versioned"
echo "Temporal's schemas are up to date"
