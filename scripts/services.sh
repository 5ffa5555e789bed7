#!/usr/bin/env bash
# Start the local PostgreSQL and Redis servers the tests use, if they are not up,
# and install nginx and wrk (Debian packages) for the benchmark tooling's tests.
set -u
case "${1:-}" in
  -h|--help)
    echo "usage: scripts/services.sh"
    echo "Start the local PostgreSQL and Redis servers the tests use, if they are"
    echo "not up, and install nginx and wrk for the benchmark tooling's tests."
    echo "\`make test\` runs it first; it takes no options."
    exit 0 ;;
esac
if command -v pg_isready >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start \
    || echo "warning: could not start PostgreSQL" >&2
fi
if command -v redis-cli >/dev/null && ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
    --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log \
    || echo "warning: could not start Redis" >&2
fi
if { ! command -v nginx >/dev/null || ! command -v wrk >/dev/null; } \
  && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "installing nginx and wrk from Debian packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends nginx-light wrk >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 \
         && apt-get install -y -q --no-install-recommends nginx-light wrk >/dev/null 2>&1; } \
    || echo "warning: could not install nginx and wrk; their tests will be skipped" >&2
fi
exit 0
