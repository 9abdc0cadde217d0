#!/bin/sh
# The namespace Apex uses (NAMESPACE: the same as APEX_TEMPORAL_NAMESPACE in apex.env), created once with its retention
# (run by the temporal-namespace service of compose.yaml with temporalio/admin-tools).
# Apex's workers create their search attributes themselves at start.
set -eu
NAMESPACE="${NAMESPACE:-default}"
RETENTION="${NAMESPACE_RETENTION:-30d}"
ADDRESS="${TEMPORAL_ADDRESS:-temporal:7233}"

attempt=1
until temporal operator cluster health --address "$ADDRESS" >/dev/null 2>&1; do
  [ "$attempt" -ge 60 ] && { echo "Temporal at $ADDRESS is not healthy"; exit 1; }
  attempt=$((attempt + 1))
  sleep 5
done
if temporal operator namespace describe --namespace "$NAMESPACE" --address "$ADDRESS" >/dev/null 2>&1; then
  echo "namespace $NAMESPACE exists"
else
  temporal operator namespace create --namespace "$NAMESPACE" --retention "$RETENTION" --address "$ADDRESS"
  echo "namespace $NAMESPACE created (retention $RETENTION)"
fi
