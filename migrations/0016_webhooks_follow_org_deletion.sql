-- 0016_webhooks_follow_org_deletion: an organization's webhooks end with it.
--
-- Deleting an organization is soft (0006: deleted_at) and every scope then
-- excludes it, so no route could reach its webhooks any more to disable or
-- delete them, while the delivery worker went on sending. In the same
-- transaction as the deletion, its webhooks are deleted (disabled) and their
-- undelivered deliveries failed, exactly as DELETE /api/v1/webhooks/:id does.
CREATE FUNCTION webhooks_follow_org_deletion() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    UPDATE public.webhooks SET deleted_at = NEW.deleted_at, enabled = false, updated_at = now()
     WHERE org_id = NEW.id AND deleted_at IS NULL;
    UPDATE public.webhook_deliveries
       SET status = 'failed', last_error = 'organization deleted', lease_id = NULL
     WHERE org_id = NEW.id AND status IN ('pending', 'delivering');
    RETURN NULL;
END
$$;

CREATE TRIGGER webhooks_follow_org_deletion
    AFTER UPDATE OF deleted_at ON organizations
    FOR EACH ROW WHEN (OLD.deleted_at IS NULL AND NEW.deleted_at IS NOT NULL)
    EXECUTE FUNCTION webhooks_follow_org_deletion();
