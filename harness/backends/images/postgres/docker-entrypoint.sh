#!/bin/sh
# The official postgres image's contract on Debian's postgresql (used offline, when the
# official image cannot be pulled). Environment, as in the official image:
#   POSTGRES_USER (default postgres)      superuser created by initdb
#   POSTGRES_DB (default POSTGRES_USER)   database created on the first start
#   POSTGRES_HOST_AUTH_METHOD             auth for remote hosts (trust, scram-sha-256, ...)
#   POSTGRES_PASSWORD                     the superuser's password (unless trust)
#   POSTGRES_INITDB_ARGS                  extra initdb arguments
#   PGDATA (default /var/lib/postgresql/data)
# The first start (empty PGDATA) runs initdb and creates the database in single-user
# mode, before the server listens: once the port answers, the database exists.
set -eu

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -n "$bindir" ]; then
    PATH="$bindir:$PATH"
    export PATH
fi

if [ "${1#-}" != "$1" ]; then
    set -- postgres "$@"  # only flags given: they are for postgres
fi

PGDATA=${PGDATA:-/var/lib/postgresql/data}
export PGDATA

if [ "$1" = postgres ] && [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown -R postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 0700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
    user=${POSTGRES_USER:-postgres}
    db=${POSTGRES_DB:-$user}
    auth=${POSTGRES_HOST_AUTH_METHOD:-}
    if [ -z "$auth" ]; then
        if [ -n "${POSTGRES_PASSWORD:-}" ]; then auth=scram-sha-256; else
            echo "postgres: set POSTGRES_PASSWORD or POSTGRES_HOST_AUTH_METHOD=trust" >&2
            exit 1
        fi
    fi
    pwfile=""
    if [ -n "${POSTGRES_PASSWORD:-}" ]; then
        pwfile=$(mktemp)
        printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
    fi
    # shellcheck disable=SC2086  # POSTGRES_INITDB_ARGS is a word list on purpose
    initdb --username="$user" ${pwfile:+--pwfile="$pwfile"} --auth-local=trust \
        --auth-host="$auth" ${POSTGRES_INITDB_ARGS:-} -D "$PGDATA"
    if [ -n "$pwfile" ]; then rm -f "$pwfile"; fi
    printf '\nhost all all all %s\n' "$auth" >> "$PGDATA/pg_hba.conf"
    printf "\nlisten_addresses = '*'\n" >> "$PGDATA/postgresql.conf"
    if [ "$db" != postgres ]; then
        echo "CREATE DATABASE \"$db\";" | postgres --single -D "$PGDATA" -j postgres >/dev/null
    fi
    echo "postgres: initialised $PGDATA (user $user, database $db, host auth $auth)"
fi

exec "$@"
