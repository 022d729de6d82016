#!/bin/sh
# Patroni runs this once, on the node that initialises the cluster, with the superuser's URL as $1:
# the database opsguard lives in (and pg_cron is bound to: cron.database_name).
set -e
psql -X -q -v ON_ERROR_STOP=1 "$1" -c "CREATE DATABASE opsguard"
