#!/bin/sh
# Make ./secrets/*, ./apex.secrets.env and the EDI drop folder ./edi-inbox for
# compose.yaml, with fresh random values that agree with each other (the PostgreSQL,
# Neo4j, Redis and Qdrant passwords appear both in the servers' secret files and in
# Apex's DSN/URL settings). Never overwrites a file that exists: delete one to make it
# again. Run as root (or with sudo) so that the payload key file can be given to uid
# 10001, the user of the Apex image. Needs python3 (for its secrets module).
set -eu
cd "$(dirname "$0")"
umask 077
mkdir -p secrets edi-inbox
chmod 700 secrets
chmod 770 edi-inbox  # the EDI watcher (uid 10001) moves files to done/ and failed/ in it
[ "$(id -u)" = 0 ] && chown 10001:10001 edi-inbox

random() { python3 -c 'import secrets; print(secrets.token_urlsafe(32))'; }

keep_or_make() {  # $1 file, $2 mode, $3 content
  if [ -e "secrets/$1" ]; then
    echo "secrets/$1 exists: kept"
  else
    printf '%s\n' "$3" > "secrets/$1"
    chmod "$2" "secrets/$1"
    echo "secrets/$1 written"
  fi
}
value_of() { cat "secrets/$1"; }

keep_or_make postgres_password 644 "$(random)"
keep_or_make temporal_db_password 644 "$(random)"
keep_or_make neo4j_auth 644 "neo4j/$(random)"
keep_or_make qdrant_api_key 644 "$(random)"
keep_or_make redis_password 644 "$(random)"
keep_or_make grafana_admin_password 644 "$(random)"
keep_or_make apex_payload_keys 600 "k1:$(python3 -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())')"
if [ "$(id -u)" = 0 ]; then
  chown 10001:10001 secrets/apex_payload_keys
else
  echo "not root: run 'sudo chown 10001:10001 $(pwd)/secrets/apex_payload_keys' (Apex reads it as uid 10001)"
fi

if [ -e apex.secrets.env ]; then
  echo "apex.secrets.env exists: kept"
else
  pg="$(value_of postgres_password)"
  neo4j="$(value_of neo4j_auth | cut -d/ -f2-)"
  redis="$(value_of redis_password)"
  qdrant="$(value_of qdrant_api_key)"
  sed -e "s|^APEX_POSTGRES_DSN=.*|APEX_POSTGRES_DSN=postgresql://apex:${pg}@postgres:5432/apex|" \
      -e "s|^APEX_GRAPH_PASSWORD=.*|APEX_GRAPH_PASSWORD=${neo4j}|" \
      -e "s|^APEX_REDIS_URL=.*|APEX_REDIS_URL=redis://:${redis}@redis:6379/0|" \
      -e "s|^APEX_QDRANT_API_KEY=.*|APEX_QDRANT_API_KEY=${qdrant}|" \
      -e "s|^APEX_ADMIN_TOKEN=.*|APEX_ADMIN_TOKEN=$(random)|" \
      -e "s|^APEX_API_KEYS=.*|APEX_API_KEYS=$(random)|" \
      -e "s|^APEX_FRONTAPP_SIGNING_SECRET=.*|# APEX_FRONTAPP_SIGNING_SECRET=<Front's signing secret>|" \
      apex.secrets.env.example > apex.secrets.env
  chmod 600 apex.secrets.env
  echo "apex.secrets.env written (set your vendors' secrets in it)"
fi
