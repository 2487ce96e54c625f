#!/usr/bin/env bash
# TLS on the local PostgreSQL (127.0.0.1:5432) with Debian's self-signed "snakeoil" certificate,
# as Debian's own postgresql.conf has it, for the docs/platforms recipes that require TLS to the
# database (tests/test_platform_runs.py).
#
#   bash tests/services/postgres_tls.sh    # prints "ssl on" when TLS is offered
#
# Idempotent: when the server already offers TLS it changes nothing. Otherwise it makes the
# snakeoil certificate if it is missing (make-ssl-cert, from Debian's ssl-cert package, as the
# postgresql package's install does), points ssl_cert_file and ssl_key_file at it, sets ssl = on
# with ALTER SYSTEM (postgresql.auto.conf) and reloads the configuration: no restart. pg_hba.conf
# is left alone, so clients that do not ask for TLS still connect without it; libpq's default
# (sslmode=prefer) now gets TLS. Run as root; the server must trust postgres on 127.0.0.1.
set -euo pipefail

HOST=127.0.0.1
PORT=${PGPORT_TLS:-5432}
CERT=/etc/ssl/certs/ssl-cert-snakeoil.pem
KEY=/etc/ssl/private/ssl-cert-snakeoil.key

say() { echo "postgres_tls.sh: $*" >&2; }
sql() { psql -h "$HOST" -p "$PORT" -U postgres -d postgres -XAtqc "$1"; }

sql "SELECT 1" >/dev/null || { say "PostgreSQL on $HOST:$PORT is not reachable"; exit 1; }

if [ "$(sql "SHOW ssl")" = on ]; then
  echo "ssl on"
  exit 0
fi

if [ ! -s "$CERT" ] || [ ! -s "$KEY" ]; then
  command -v make-ssl-cert >/dev/null || { say "make-ssl-cert (package ssl-cert) is missing"; exit 1; }
  say "making the snakeoil certificate: make-ssl-cert generate-default-snakeoil"
  make-ssl-cert generate-default-snakeoil
fi
# The server reads the key as postgres: a root-owned key may be group-readable by ssl-cert.
id -nG postgres | grep -qw ssl-cert || { say "the postgres user is not in the ssl-cert group"; exit 1; }

say "ALTER SYSTEM SET ssl = on (cert $CERT, key $KEY), then pg_reload_conf()"
sql "ALTER SYSTEM SET ssl_cert_file = '$CERT'" >/dev/null
sql "ALTER SYSTEM SET ssl_key_file = '$KEY'" >/dev/null
sql "ALTER SYSTEM SET ssl = on" >/dev/null
sql "SELECT pg_reload_conf()" >/dev/null

for _ in $(seq 1 50); do
  if [ "$(sql "SHOW ssl")" = on ]; then
    echo "ssl on"
    exit 0
  fi
  sleep 0.1
done
say "ssl is still off after the reload: see the server's log (the certificate or key was refused)"
exit 1
