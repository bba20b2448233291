# Sourced by .ci/run: makes sure a PostgreSQL server runs on 127.0.0.1:5432 and exports
# TEST_PG_URL for the tests. Installs Debian's postgresql when the server is missing.
if [ -z "${TEST_PG_URL:-}" ]; then
    if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
        echo "installing PostgreSQL (Debian package)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    fi
    ver=$(ls /usr/lib/postgresql | sort -n | tail -1)
    if ! pg_lsclusters -h 2>/dev/null | grep -q .; then
        pg_createcluster "$ver" main >/dev/null
    fi
    cluster=$(pg_lsclusters -h | head -1 | awk '{print $1" "$2}')
    if ! pg_lsclusters -h | head -1 | grep -q online; then
        pg_ctlcluster $cluster start
    fi
    for _ in $(seq 1 30); do
        su postgres -c "psql -qAt -c 'select 1'" >/dev/null 2>&1 && break
        sleep 1
    done
    su postgres -c "psql -q -c \"ALTER USER postgres PASSWORD 'shouhou-ci'\"" >/dev/null
    export TEST_PG_URL="postgres://postgres:shouhou-ci@127.0.0.1:5432/postgres"
    echo "PostgreSQL ready for the tests ($cluster)"
fi
