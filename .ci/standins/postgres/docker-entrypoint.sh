#!/usr/bin/env bash
# Entrypoint of the mlops-lab-ci/postgres stand-in: same environment contract as the
# official postgres image's docker-entrypoint.sh (written independently, smaller).
set -Eeo pipefail

log() { printf '%s [entrypoint] %s\n' "$(date -u '+%Y-%m-%d %H:%M:%S UTC')" "$*" >&2; }

# file_env VAR [DEFAULT]: VAR may instead be given as VAR_FILE (Docker secrets).
file_env() {
  local var="$1" fileVar="${1}_FILE" def="${2:-}" val
  if [ -n "${!var:-}" ] && [ -n "${!fileVar:-}" ]; then
    log "error: both $var and $fileVar are set (but are exclusive)"; exit 1
  fi
  val="$def"
  if [ -n "${!var:-}" ]; then val="${!var}"
  elif [ -n "${!fileVar:-}" ]; then val="$(< "${!fileVar}")"; fi
  export "$var"="$val"
  unset "$fileVar"
}

setup_env() {
  file_env POSTGRES_PASSWORD
  file_env POSTGRES_USER postgres
  file_env POSTGRES_DB "$POSTGRES_USER"
  file_env POSTGRES_INITDB_ARGS
  : "${POSTGRES_HOST_AUTH_METHOD:=scram-sha-256}"
  export POSTGRES_HOST_AUTH_METHOD
  DATABASE_ALREADY_EXISTS=
  if [ -s "$PGDATA/PG_VERSION" ]; then DATABASE_ALREADY_EXISTS=true; fi
}

# Anything that is only a help/version request must not touch PGDATA.
want_help() {
  local arg
  for arg; do
    case "$arg" in -'?'|--help|--describe-config|-V|--version) return 0 ;; esac
  done
  return 1
}

init_database() {
  if [ -z "$POSTGRES_PASSWORD" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
    cat >&2 <<'MSG'
Error: Database is uninitialized and superuser password is not specified.
       You must specify POSTGRES_PASSWORD to a non-empty value for the
       superuser. For example, "-e POSTGRES_PASSWORD=password" on "docker run".
       (Or POSTGRES_HOST_AUTH_METHOD=trust to allow all connections without a
       password: NOT recommended.)
MSG
    exit 1
  fi
  log "initialising database cluster in $PGDATA"
  # (the <(...) must be on the initdb command line itself: its fd dies with the command)
  # shellcheck disable=SC2086  # POSTGRES_INITDB_ARGS is a word list by contract
  if [ -n "$POSTGRES_PASSWORD" ]; then
    initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") $POSTGRES_INITDB_ARGS
  else
    initdb --username="$POSTGRES_USER" $POSTGRES_INITDB_ARGS
  fi

  # local (unix socket) connections stay "trust" like upstream; TCP needs a password
  printf '\nhost all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD" >> "$PGDATA/pg_hba.conf"

  # temporary server on the unix socket only, to create the database and run init scripts
  PGUSER="$POSTGRES_USER" pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p 5432" -w start
  export PGPASSWORD="$POSTGRES_PASSWORD"
  local psql=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)
  if [ "$POSTGRES_DB" != postgres ]; then
    "${psql[@]}" --dbname postgres --set db="$POSTGRES_DB" <<'SQL'
CREATE DATABASE :"db" ;
SQL
  fi
  local f
  for f in /docker-entrypoint-initdb.d/*; do
    [ -e "$f" ] || continue
    case "$f" in
      *.sh)
        if [ -x "$f" ]; then log "running $f"; "$f"
        else log "sourcing $f"; # shellcheck disable=SC1090
          . "$f"; fi ;;
      *.sql)    log "running $f"; "${psql[@]}" --dbname "$POSTGRES_DB" -f "$f" ;;
      *.sql.gz) log "running $f"; gunzip -c "$f" | "${psql[@]}" --dbname "$POSTGRES_DB" ;;
      *)        log "ignoring $f" ;;
    esac
  done
  unset PGPASSWORD
  pg_ctl -D "$PGDATA" -m fast -w stop
  log "PostgreSQL init process complete; ready for start up."
}

# "docker run IMAGE -c foo=bar" means "postgres -c foo=bar"
if [ "${1:0:1}" = '-' ]; then set -- postgres "$@"; fi

if [ "$1" = postgres ] && ! want_help "$@"; then
  setup_env
  if [ "$(id -u)" = 0 ]; then
    # fix ownership of the (possibly freshly mounted) volume, then drop to postgres
    mkdir -p "$PGDATA"
    chmod 00700 "$PGDATA" || :
    find "$PGDATA" \! -user postgres -exec chown postgres:postgres '{}' + || :
    install -d -o postgres -g postgres -m 3777 /var/run/postgresql
    exec gosu postgres "${BASH_SOURCE[0]}" "$@"
  fi
  if [ -z "$DATABASE_ALREADY_EXISTS" ]; then
    init_database
  else
    log "PostgreSQL database directory appears to contain a database; skipping initialization"
  fi
fi

exec "$@"
