-- 0006_tenancy_lifecycle: organizations and sites can be deleted.
--
-- Deletion is soft: the row stays with deleted_at set, so the audit chain of
-- a deleted organization stays verifiable (its rows keep their org_id) and
-- decommissioned devices keep their history. The server hides deleted rows
-- from every tenancy scope, list and lookup (src/server/tenancy), and a
-- deleted row's name may be taken again: the UNIQUE constraints of 0001
-- become unique indexes over the live rows only.

ALTER TABLE organizations ADD COLUMN deleted_at timestamptz;
ALTER TABLE sites ADD COLUMN deleted_at timestamptz;

ALTER TABLE organizations DROP CONSTRAINT organizations_partner_id_name_key;
CREATE UNIQUE INDEX organizations_partner_name_live_key
    ON organizations (partner_id, name) WHERE deleted_at IS NULL;

ALTER TABLE sites DROP CONSTRAINT sites_org_id_name_key;
CREATE UNIQUE INDEX sites_org_name_live_key
    ON sites (org_id, name) WHERE deleted_at IS NULL;

-- No new row may point at a deleted organization or site. The server checks
-- visibility before it inserts, but that check and the insert are separate
-- statements, and a foreign key only takes FOR KEY SHARE on the parent,
-- which does not wait for the FOR UPDATE lock a deletion holds (nor
-- conflict with the non-key UPDATE that sets deleted_at). This trigger takes
-- FOR SHARE on the parent rows instead: an insert racing a deletion either
-- commits first (and the deletion, which locks the row before counting what
-- it holds, sees it and refuses with 409), or waits for the deletion to
-- commit and then finds the parent deleted and fails. So an agent enrolling
-- into a site that is being deleted, an enrolment key or user created for
-- it, or a site created in an organization being deleted cannot slip in.
-- Updates fire it only when they move a row to another organization or site,
-- so heartbeats (UPDATE devices) never take these locks.
CREATE FUNCTION tenancy_require_live_parent() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    row_j jsonb := to_jsonb(NEW);
    org uuid := (row_j ->> 'org_id')::uuid;
    site uuid := (row_j ->> 'site_id')::uuid;
BEGIN
    IF org IS NOT NULL THEN
        PERFORM 1 FROM organizations WHERE id = org AND deleted_at IS NULL FOR SHARE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'organization % does not exist or is deleted', org
                USING ERRCODE = 'foreign_key_violation';
        END IF;
    END IF;
    IF site IS NOT NULL THEN
        PERFORM 1 FROM sites WHERE id = site AND deleted_at IS NULL FOR SHARE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'site % does not exist or is deleted', site
                USING ERRCODE = 'foreign_key_violation';
        END IF;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER sites_live_parent BEFORE INSERT OR UPDATE OF org_id ON sites
    FOR EACH ROW EXECUTE FUNCTION tenancy_require_live_parent();
CREATE TRIGGER users_live_parent BEFORE INSERT OR UPDATE OF org_id ON users
    FOR EACH ROW EXECUTE FUNCTION tenancy_require_live_parent();
CREATE TRIGGER memberships_live_parent BEFORE INSERT OR UPDATE OF org_id, site_id ON memberships
    FOR EACH ROW EXECUTE FUNCTION tenancy_require_live_parent();
CREATE TRIGGER enrollment_keys_live_parent BEFORE INSERT OR UPDATE OF org_id, site_id
    ON enrollment_keys
    FOR EACH ROW EXECUTE FUNCTION tenancy_require_live_parent();
CREATE TRIGGER devices_live_parent BEFORE INSERT OR UPDATE OF org_id, site_id ON devices
    FOR EACH ROW EXECUTE FUNCTION tenancy_require_live_parent();
