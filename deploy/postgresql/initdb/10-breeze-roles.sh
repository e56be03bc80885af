#!/bin/sh
# Creates Breeze's three database roles and its database (docs/deploy.md):
#   breeze_owner        owns the schema, runs `breeze-server migrate`
#   breeze_app          the server: no DDL, no ownership (migrations grant it
#                       table privileges)
#   breeze_audit_admin  audit retention only; breeze_app is never a member
#
# The postgres image runs it once, on the first start of an empty data
# directory (/docker-entrypoint-initdb.d). On a host install run it once as
# the postgres user:
#   sudo -u postgres env BREEZE_OWNER_DB_PASSWORD=... BREEZE_APP_DB_PASSWORD=... \
#     BREEZE_AUDIT_DB_PASSWORD=... sh deploy/postgresql/initdb/10-breeze-roles.sh
# The passwords come from the environment and reach psql as variables, never
# on a command line.
set -eu

: "${BREEZE_OWNER_DB_PASSWORD:?}" "${BREEZE_APP_DB_PASSWORD:?}" "${BREEZE_AUDIT_DB_PASSWORD:?}"

psql -X -q -v ON_ERROR_STOP=1 --dbname postgres \
    -v owner_pw="$BREEZE_OWNER_DB_PASSWORD" \
    -v app_pw="$BREEZE_APP_DB_PASSWORD" \
    -v audit_pw="$BREEZE_AUDIT_DB_PASSWORD" <<'SQL'
SET password_encryption = 'scram-sha-256';
CREATE ROLE breeze_owner LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    PASSWORD :'owner_pw';
CREATE ROLE breeze_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    PASSWORD :'app_pw';
CREATE ROLE breeze_audit_admin LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    PASSWORD :'audit_pw';
CREATE DATABASE breeze OWNER breeze_owner ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'
    TEMPLATE template0;
REVOKE ALL ON DATABASE breeze FROM PUBLIC;
GRANT CONNECT ON DATABASE breeze TO breeze_app, breeze_audit_admin;
REVOKE CONNECT ON DATABASE postgres FROM PUBLIC;
\connect breeze
ALTER SCHEMA public OWNER TO breeze_owner;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO breeze_app, breeze_audit_admin;
SQL
