"""The audit chain: seals of the stored requests, and the queue of those not sealed yet.

- `lineage_sealqueue` is filled by a statement trigger on the request log (one INSERT
  of the new ids per INSERT statement, from its transition table), in the same
  transaction as the requests: the sealer sees a request exactly when it is committed.
  The requests already stored are queued here, so the first rounds seal the backlog.
- `lineage_requestseal` is append-only like the log.
- Both triggers let two documented procedures through, each only when its session
  setting is on (SET LOCAL, inside the procedure's transaction):
  `lineage.audit_retention = <sequence>` deletes sealed requests and seals up to that
  sequence (lineage/chain/retention.py); `lineage.audit_redaction = on` replaces a
  sealed request's body by a `{"_redacted": ...}` marker and changes nothing else
  (lineage/chain/redaction.py). Anything else is refused as before.
"""

from django.db import migrations, models

FORWARD = """
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

CREATE FUNCTION lineage_requestseal_append_only() RETURNS trigger AS $$
DECLARE
    cut text := current_setting('lineage.audit_retention', true);
BEGIN
    IF TG_OP = 'DELETE' AND coalesce(cut, '') <> '' AND OLD.sequence <= cut::bigint THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'lineage_requestseal is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER lineage_requestseal_append_only
    BEFORE UPDATE OR DELETE ON lineage_requestseal
    FOR EACH ROW EXECUTE FUNCTION lineage_requestseal_append_only();

CREATE FUNCTION lineage_requestlog_queue_seal() RETURNS trigger AS $$
BEGIN
    INSERT INTO lineage_sealqueue (log_id) SELECT id FROM added;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER lineage_requestlog_queue_seal
    AFTER INSERT ON lineage_requestlog
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION lineage_requestlog_queue_seal();

INSERT INTO lineage_sealqueue (log_id) SELECT id FROM lineage_requestlog;
"""

BACKWARD = """
DROP TRIGGER IF EXISTS lineage_requestlog_queue_seal ON lineage_requestlog;
DROP FUNCTION IF EXISTS lineage_requestlog_queue_seal();
DROP TRIGGER IF EXISTS lineage_requestseal_append_only ON lineage_requestseal;
DROP FUNCTION IF EXISTS lineage_requestseal_append_only();
CREATE OR REPLACE FUNCTION lineage_requestlog_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'lineage_requestlog is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$ LANGUAGE plpgsql;
"""


class Migration(migrations.Migration):
    dependencies = [("lineage", "0004_request_id")]

    operations = [
        migrations.CreateModel(
            name="RequestSeal",
            fields=[
                ("sequence", models.BigIntegerField(primary_key=True, serialize=False)),
                ("log_id", models.BigIntegerField(unique=True)),
                ("body_hash", models.BinaryField(max_length=32)),
                ("hash", models.BinaryField(max_length=32)),
                ("sealed_at", models.DateTimeField()),
            ],
            options={"ordering": ["sequence"]},
        ),
        migrations.CreateModel(
            name="SealQueue",
            fields=[("log_id", models.BigIntegerField(primary_key=True, serialize=False))],
        ),
        migrations.RunSQL(FORWARD, BACKWARD),
    ]
