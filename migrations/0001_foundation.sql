-- 0001_foundation: tenants, users, roles, sessions, enrolment keys, devices,
-- and the audit log (hash chain and append-only triggers come in 0002).
-- Applied by `breeze-server migrate` as the schema owner; the server itself
-- connects as breeze_app, which gets only the grants at the end of this file.

CREATE EXTENSION IF NOT EXISTS pgcrypto;

CREATE TABLE partners (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    settings    bytea,          -- AES-256-GCM envelope (checklist O2)
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE organizations (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    partner_id  uuid NOT NULL REFERENCES partners(id),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (partner_id, name)
);

CREATE TABLE sites (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id      uuid NOT NULL REFERENCES organizations(id),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    settings    bytea,          -- AES-256-GCM envelope (checklist O2)
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, name)
);
CREATE INDEX sites_org_idx ON sites (org_id);

-- Roles carry permissions and the force-MFA flag (checklist A2). scope says
-- whether the role is given to partner staff or to organization users.
CREATE TABLE roles (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL UNIQUE,
    scope       text NOT NULL CHECK (scope IN ('partner', 'organization')),
    permissions text[] NOT NULL DEFAULT '{}',
    force_mfa   boolean NOT NULL DEFAULT false,
    builtin     boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now()
);

INSERT INTO roles (name, scope, permissions, builtin) VALUES
 ('partner_admin', 'partner',
  ARRAY['orgs:read','orgs:write','sites:read','sites:write','users:read','users:write',
        'roles:read','devices:read','devices:write','enrollment_keys:read',
        'enrollment_keys:write','audit:read'], true),
 ('partner_technician', 'partner',
  ARRAY['orgs:read','sites:read','devices:read','devices:write','enrollment_keys:read',
        'enrollment_keys:write','roles:read'], true),
 ('org_admin', 'organization',
  ARRAY['orgs:read','sites:read','sites:write','users:read','devices:read','devices:write',
        'enrollment_keys:read','enrollment_keys:write','roles:read','audit:read'], true),
 ('org_viewer', 'organization',
  ARRAY['orgs:read','sites:read','devices:read','roles:read'], true);

-- A user belongs either to a partner (MSP staff) or to one organization.
CREATE TABLE users (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    partner_id    uuid REFERENCES partners(id),
    org_id        uuid REFERENCES organizations(id),
    role_id       uuid NOT NULL REFERENCES roles(id),
    email         text NOT NULL CHECK (email = lower(btrim(email)) AND length(email) BETWEEN 3 AND 254),
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    password_hash text NOT NULL,
    status        text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    mfa_enabled   boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_login_at timestamptz,
    CHECK ((partner_id IS NULL) <> (org_id IS NULL))
);
CREATE UNIQUE INDEX users_email_key ON users (email);

-- Scope limits. A partner user with no rows sees every organization of the
-- partner; with rows, only the listed organizations. An organization user
-- with no rows sees every site of the organization; with rows, only those
-- sites.
CREATE TABLE memberships (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    org_id      uuid REFERENCES organizations(id),
    site_id     uuid REFERENCES sites(id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (org_id IS NOT NULL OR site_id IS NOT NULL),
    UNIQUE (user_id, org_id, site_id)
);
CREATE INDEX memberships_user_idx ON memberships (user_id);

-- One row per login. Access tokens carry the session id (sid); a revoked or
-- expired session invalidates every token of it. The refresh columns are for
-- refresh-token families (checklist A7), filled by a later migration's code.
CREATE TABLE sessions (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id            uuid NOT NULL REFERENCES users(id),
    created_at         timestamptz NOT NULL DEFAULT now(),
    expires_at         timestamptz NOT NULL,
    last_seen_at       timestamptz NOT NULL DEFAULT now(),
    revoked_at         timestamptz,
    revoked_reason     text,
    ip_address         inet,
    user_agent         text,
    mfa_verified       boolean NOT NULL DEFAULT false,
    refresh_family_id  uuid,
    refresh_token_hash text UNIQUE,
    refresh_generation integer NOT NULL DEFAULT 0
);
CREATE INDEX sessions_user_idx ON sessions (user_id);

-- Enrolment keys (checklist G5): only the HMAC-SHA-256 of the key with
-- ENROLLMENT_KEY_PEPPER is stored; expiry and a use limit are mandatory.
CREATE TABLE enrollment_keys (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id       uuid NOT NULL REFERENCES organizations(id),
    site_id      uuid NOT NULL REFERENCES sites(id),
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    key_hash     text NOT NULL UNIQUE CHECK (key_hash ~ '^[0-9a-f]{64}$'),
    key_prefix   text NOT NULL,
    max_usage    integer NOT NULL CHECK (max_usage BETWEEN 1 AND 100000),
    usage_count  integer NOT NULL DEFAULT 0 CHECK (usage_count >= 0 AND usage_count <= max_usage),
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz,
    created_by   uuid REFERENCES users(id),
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX enrollment_keys_org_idx ON enrollment_keys (org_id);

-- Devices. The agent token is stored only as its SHA-256 (checklist G1);
-- the previous hash is kept for the rotation grace period (G2).
CREATE TABLE devices (
    id                      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id                  uuid NOT NULL REFERENCES organizations(id),
    site_id                 uuid NOT NULL REFERENCES sites(id),
    hostname                text NOT NULL CHECK (length(hostname) BETWEEN 1 AND 255),
    os_type                 text NOT NULL,
    os_version              text NOT NULL DEFAULT '',
    architecture            text NOT NULL DEFAULT '',
    agent_version           text NOT NULL DEFAULT '',
    status                  text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended', 'decommissioned')),
    auth_token_hash         text NOT NULL UNIQUE CHECK (auth_token_hash ~ '^[0-9a-f]{64}$'),
    prev_token_hash         text,
    prev_token_expires_at   timestamptz,
    heartbeat_interval_s    integer NOT NULL DEFAULT 60,
    enrollment_key_id       uuid REFERENCES enrollment_keys(id),
    enrolled_at             timestamptz NOT NULL DEFAULT now(),
    last_seen_at            timestamptz,
    last_ip                 inet,
    hardware                jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX devices_org_idx ON devices (org_id, id);
CREATE INDEX devices_site_idx ON devices (site_id);
CREATE INDEX devices_hostname_idx ON devices (org_id, hostname text_pattern_ops);

-- Latest heartbeat state per device: metrics and reported inventory.
CREATE TABLE device_heartbeats (
    device_id       uuid PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
    org_id          uuid NOT NULL REFERENCES organizations(id),
    received_at     timestamptz NOT NULL,
    source_ip       inet,
    agent_status    text NOT NULL,
    agent_version   text NOT NULL DEFAULT '',
    uptime_seconds  bigint,
    metrics         jsonb NOT NULL DEFAULT '{}',
    inventory       jsonb NOT NULL DEFAULT '{}'
);

-- Audit log (checklist L1, L2). Rows are sealed into a per-organization
-- hash chain by the trigger in 0002; seq, ts, checksum and prev_checksum are
-- always set there, whatever the inserting client sends. details and
-- ip_address are text so the bytes that are hashed are the bytes stored.
CREATE TABLE audit_log (
    id             bigserial PRIMARY KEY,
    org_id         uuid,
    chain_id       uuid GENERATED ALWAYS AS
                       (coalesce(org_id, '00000000-0000-0000-0000-000000000000'::uuid)) STORED,
    seq            bigint NOT NULL CHECK (seq >= 1),
    ts             timestamptz NOT NULL,
    actor_type     text NOT NULL CHECK (actor_type IN ('user', 'api_key', 'agent', 'system')),
    actor_id       text,
    action         text NOT NULL CHECK (action ~ '^[a-z0-9_]+(\.[a-z0-9_]+)+$'),
    resource       text NOT NULL CHECK (length(resource) BETWEEN 1 AND 100),
    resource_id    text,
    details        text NOT NULL DEFAULT '{}' CHECK (details::jsonb IS NOT NULL),
    ip_address     text CHECK (ip_address IS NULL OR host(ip_address::inet) = ip_address),
    result         text NOT NULL DEFAULT 'success' CHECK (result IN ('success', 'failure', 'denied')),
    checksum       text NOT NULL CHECK (checksum ~ '^[0-9a-f]{64}$'),
    prev_checksum  text NOT NULL CHECK (prev_checksum ~ '^[0-9a-f]{64}$'),
    -- One position per row, and no two rows with the same predecessor: a
    -- chain can neither repeat a position nor fork (checklist L2).
    CONSTRAINT audit_log_chain_seq_key UNIQUE (chain_id, seq),
    CONSTRAINT audit_log_chain_prev_key UNIQUE (chain_id, prev_checksum),
    CONSTRAINT audit_log_genesis_check CHECK ((seq = 1) = (prev_checksum = repeat('0', 64)))
);
CREATE INDEX audit_log_org_ts_idx ON audit_log (org_id, ts DESC, id DESC);

-- The server's role: data access only, no DDL, audit rows insert-only.
GRANT SELECT, INSERT, UPDATE, DELETE ON partners, organizations, sites, users,
    memberships, sessions, enrollment_keys, devices, device_heartbeats TO breeze_app;
GRANT SELECT ON roles TO breeze_app;
GRANT SELECT ON schema_migrations TO breeze_app;
