-- 0010_access: roles and permissions, custom roles, per-partner forceMfa of
-- built-in roles, and API keys. The permission names are the table in
-- src/server/auth/permissions.c; a unit test checks that every permission a
-- built-in role names there exists.

-- New permissions of the existing built-in roles: partner administrators
-- manage custom roles (roles:write) and everyone who administers something
-- may make API keys for it.
UPDATE roles SET permissions = permissions || ARRAY['roles:write','api_keys:read','api_keys:write']
 WHERE name = 'partner_admin' AND builtin;
UPDATE roles SET permissions = permissions || ARRAY['api_keys:read','api_keys:write']
 WHERE name IN ('partner_technician', 'org_admin') AND builtin;

-- A technician and a read-only role at both scopes: partner_technician and
-- org_viewer exist since 0001; partner_viewer and org_technician complete
-- the set. force_mfa keeps its default (false): 0009 turns it on for the
-- administrator roles only.
INSERT INTO roles (name, scope, permissions, builtin) VALUES
 ('partner_viewer', 'partner',
  ARRAY['orgs:read','sites:read','users:read','roles:read','devices:read',
        'enrollment_keys:read','audit:read'], true),
 ('org_technician', 'organization',
  ARRAY['orgs:read','sites:read','devices:read','devices:write','enrollment_keys:read',
        'enrollment_keys:write','roles:read','api_keys:read','api_keys:write'], true);

-- Custom roles belong to the partner whose administrator made them
-- (partner_id NULL: a built-in role, shared by every partner, or a global
-- role an operator made in SQL, which the API shows but never changes).
-- Names are unique per partner, so one partner's role names never collide
-- with (or reveal) another's; the code refuses custom names equal to a
-- built-in's.
ALTER TABLE roles ADD COLUMN partner_id uuid REFERENCES partners(id);
ALTER TABLE roles ADD CONSTRAINT roles_builtin_partner_check CHECK (NOT builtin OR partner_id IS NULL);
ALTER TABLE roles DROP CONSTRAINT roles_name_key;
CREATE UNIQUE INDEX roles_partner_name_key
    ON roles (coalesce(partner_id, '00000000-0000-0000-0000-000000000000'::uuid), name);
ALTER TABLE roles ADD CONSTRAINT roles_name_check CHECK (length(name) BETWEEN 1 AND 63);

-- A built-in role is shared, so a partner cannot change its force_mfa row;
-- a partner administrator's choice for its own staff and organizations is
-- recorded here and wins over roles.force_mfa for that partner's users.
CREATE TABLE partner_role_settings (
    partner_id  uuid NOT NULL REFERENCES partners(id),
    role_id     uuid NOT NULL REFERENCES roles(id),
    force_mfa   boolean NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (partner_id, role_id)
);

-- The partner a user belongs to: its own (partner staff) or its
-- organization's.
CREATE FUNCTION user_partner(p_user uuid) RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN (SELECT coalesce(u.partner_id, o.partner_id)
              FROM public.users u LEFT JOIN public.organizations o ON o.id = u.org_id
             WHERE u.id = p_user);

-- The force-MFA flag in force for user P_USER holding role P_ROLE: the
-- partner's setting for a built-in role when it made one, else the role's.
-- Every reader of force_mfa (the request principal, login, MFA disable)
-- asks this function, never roles.force_mfa alone.
CREATE FUNCTION role_force_mfa(p_role uuid, p_user uuid) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN coalesce((SELECT s.force_mfa FROM public.partner_role_settings s
                      WHERE s.role_id = p_role AND s.partner_id = public.user_partner(p_user)),
                    (SELECT r.force_mfa FROM public.roles r WHERE r.id = p_role));

-- API keys: only the SHA-256 of the raw key is stored (the key is 256
-- random bits, so a fast hash is enough: nothing to brute-force). A key
-- acts for its creator with at most the creator's permissions at the time
-- of each request, optionally limited to one organization.
CREATE TABLE api_keys (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    created_by    uuid NOT NULL REFERENCES users(id),
    org_id        uuid REFERENCES organizations(id),
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    key_hash      text NOT NULL UNIQUE CHECK (key_hash ~ '^[0-9a-f]{64}$'),
    key_prefix    text NOT NULL,
    permissions   text[] NOT NULL CHECK (cardinality(permissions) >= 1),
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    expires_at    timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX api_keys_creator_idx ON api_keys (created_by);

-- Audit rows of requests made with an API key (actor_type 'api_key',
-- actor_id the key's id) go to the creator's partner chain when they
-- concern no organization, like the creator's own.
CREATE OR REPLACE FUNCTION audit_event_partner(p_org uuid, p_actor_type text, p_actor_id text)
    RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN CASE
        WHEN p_org IS NULL AND p_actor_type = 'user' THEN
            (SELECT u.partner_id FROM public.users u WHERE u.id = public.audit_try_uuid(p_actor_id))
        WHEN p_org IS NULL AND p_actor_type = 'api_key' THEN
            (SELECT u.partner_id FROM public.api_keys k JOIN public.users u ON u.id = k.created_by
              WHERE k.id = public.audit_try_uuid(p_actor_id))
    END;

GRANT SELECT, INSERT, UPDATE, DELETE ON roles, partner_role_settings, api_keys TO breeze_app;
