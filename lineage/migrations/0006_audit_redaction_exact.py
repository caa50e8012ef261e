"""The redaction trigger compares the rest of the row byte for byte.

0005 let `lineage.audit_redaction` through when `to_jsonb(NEW) - 'body'` equalled
`to_jsonb(OLD) - 'body'` and the body merely had a `_redacted` key. jsonb equality is
numeric, so `{"limit": 10}` could become `{"limit": 10.0}` and `duration_ms` 0 become
-0 in the same UPDATE; and any body with that key (`["_redacted"]`, `{"_redacted": 1,
"x": ...}`) passed. The setting is anyone's (a custom GUC), so the application's role
could rewrite requests that way (verification named them, the trigger should refuse
them). Now: the body must be an object whose only key is `_redacted`, and every other
column the same binary image (`*=`, record_image_eq), as the chain's encoding sees it.
"""

from django.db import migrations

FUNCTION = """
CREATE OR REPLACE FUNCTION lineage_requestlog_append_only() RETURNS trigger AS $$
DECLARE
    cut text := current_setting('lineage.audit_retention', true);
    rest lineage_requestlog%ROWTYPE;
BEGIN
    IF TG_OP = 'DELETE' AND coalesce(cut, '') <> '' AND EXISTS (
        SELECT 1 FROM lineage_requestseal s
        WHERE s.log_id = OLD.id AND s.sequence <= cut::bigint
    ) THEN
        RETURN OLD;
    END IF;
    IF TG_OP = 'UPDATE' AND current_setting('lineage.audit_redaction', true) = 'on'
        AND jsonb_typeof(NEW.body) = 'object' AND NEW.body ? '_redacted'
        AND NEW.body - '_redacted' = '{}'::jsonb
        AND EXISTS (SELECT 1 FROM lineage_requestseal s WHERE s.log_id = OLD.id)
    THEN
        rest := NEW;
        rest.body := OLD.body;
        IF rest *= OLD THEN
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION 'lineage_requestlog is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$ LANGUAGE plpgsql;
"""

FORMER = """
CREATE OR REPLACE FUNCTION lineage_requestlog_append_only() RETURNS trigger AS $$
DECLARE
    cut text := current_setting('lineage.audit_retention', true);
BEGIN
    IF TG_OP = 'DELETE' AND coalesce(cut, '') <> '' AND EXISTS (
        SELECT 1 FROM lineage_requestseal s
        WHERE s.log_id = OLD.id AND s.sequence <= cut::bigint
    ) THEN
        RETURN OLD;
    END IF;
    IF TG_OP = 'UPDATE' AND current_setting('lineage.audit_redaction', true) = 'on'
        AND NEW.body ? '_redacted'
        AND (to_jsonb(NEW) - 'body') = (to_jsonb(OLD) - 'body')
        AND EXISTS (SELECT 1 FROM lineage_requestseal s WHERE s.log_id = OLD.id)
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'lineage_requestlog is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$ LANGUAGE plpgsql;
"""


class Migration(migrations.Migration):
    dependencies = [("lineage", "0005_audit_chain")]

    operations = [migrations.RunSQL(FUNCTION, FORMER)]
