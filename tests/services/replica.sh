#!/usr/bin/env bash
# A PostgreSQL streaming replica of the primary on 127.0.0.1:5432, on 127.0.0.1:5433, that
# replays what it receives 8 seconds late (recovery_min_apply_delay), for tests/stacks/replica.
#
#   bash tests/services/replica.sh        # make it (or check it), start it, print its URL
#   bash tests/services/replica.sh stop   # stop it (the next run rebuilds it if it fell behind)
#
# Idempotent: when the cluster "replica" already runs as a streaming standby with the delay, it
# only prints the URL. Otherwise it (re)makes it: pg_createcluster, an empty data directory,
# pg_basebackup -R from the primary, trust authentication, and starts it. Debian's PostgreSQL
# (postgresql-common); run as root. The primary must be running, with trust for 127.0.0.1.
# REPLICA_DELAY=15s makes one with another delay (the next run without it makes it 8s again).
set -euo pipefail

VERSION=${PG_VERSION:-$(ls /etc/postgresql | sort -n | tail -n 1)}
CLUSTER=replica
PORT=5433
DELAY=${REPLICA_DELAY:-8s}  # recovery_min_apply_delay, as PostgreSQL shows it (8s, 1min)
PRIMARY_HOST=127.0.0.1
PRIMARY_PORT=5432
BIN=/usr/lib/postgresql/$VERSION/bin
CONF=/etc/postgresql/$VERSION/$CLUSTER
URL="postgres://postgres@127.0.0.1:$PORT/postgres"

say() { echo "replica.sh: $*" >&2; }
on_primary() { psql -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" -U postgres -d postgres -XAtqc "$1"; }
on_replica() { psql -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -XAtqc "$1" 2>/dev/null; }
exists() { [ -d "$CONF" ]; }
online() { pg_lsclusters -h "$VERSION" "$CLUSTER" 2>/dev/null | grep -qw online; }

streaming() {  # a standby, with the delay, that receives the primary's WAL
  [ "$(on_replica "SELECT pg_is_in_recovery()::text || ' ' || current_setting('recovery_min_apply_delay') || ' ' || coalesce((SELECT status FROM pg_stat_wal_receiver), 'none')")" \
    = "true $DELAY streaming" ]
}

if [ "${1:-}" = stop ]; then
  if exists && online; then pg_ctlcluster --skip-systemctl-redirect "$VERSION" "$CLUSTER" stop; fi
  exit 0
fi

on_primary "SELECT 1" >/dev/null || { say "the primary on $PRIMARY_HOST:$PRIMARY_PORT is not reachable"; exit 1; }

if exists && online && streaming; then
  echo "$URL"
  exit 0
fi

# The primary lets the replica stream from it (walsender connections need a `replication` line).
hba=$(on_primary "SHOW hba_file")
if ! grep -Eq '^[[:space:]]*host[[:space:]]+replication[[:space:]]+all[[:space:]]+127\.0\.0\.1/32[[:space:]]+trust' "$hba"; then
  say "adding 'host replication all 127.0.0.1/32 trust' to $hba"
  echo "host replication all 127.0.0.1/32 trust" >> "$hba"
  on_primary "SELECT pg_reload_conf()" >/dev/null
fi

if exists; then
  online && pg_ctlcluster --skip-systemctl-redirect "$VERSION" "$CLUSTER" stop --mode fast
else
  say "creating cluster $VERSION/$CLUSTER on port $PORT"
  pg_createcluster "$VERSION" "$CLUSTER" -p "$PORT" >/dev/null
fi

data=$(pg_lsclusters -h "$VERSION" "$CLUSTER" | awk '{print $6}')
[ -n "$data" ] && [ "$data" != / ] || { say "no data directory for $VERSION/$CLUSTER"; exit 1; }
find "$data" -mindepth 1 -delete
say "pg_basebackup from $PRIMARY_HOST:$PRIMARY_PORT into $data"
runuser -u postgres -- "$BIN/pg_basebackup" -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" -U postgres \
  -D "$data" -R -X stream --checkpoint=fast
echo "recovery_min_apply_delay = '$DELAY'" >> "$data/postgresql.auto.conf"

cat > "$CONF/pg_hba.conf" <<HBA
# Written by tests/services/replica.sh: a test replica on the loopback interface, no passwords.
local all all trust
host all all 127.0.0.1/32 trust
host all all ::1/128 trust
HBA
chown postgres:postgres "$CONF/pg_hba.conf"

pg_ctlcluster --skip-systemctl-redirect "$VERSION" "$CLUSTER" start
for _ in $(seq 1 60); do
  streaming && { echo "$URL"; exit 0; }
  sleep 0.5
done
say "the replica did not start streaming; see /var/log/postgresql/postgresql-$VERSION-$CLUSTER.log"
exit 1
