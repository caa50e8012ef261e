"""The request log is append-only: the database refuses UPDATE and DELETE on it.

A trigger, so that it holds for the application's role whatever its privileges.
TRUNCATE is left to administrators (retention) and to the test runner.
"""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION lineage_requestlog_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'lineage_requestlog is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER lineage_requestlog_append_only
    BEFORE UPDATE OR DELETE ON lineage_requestlog
    FOR EACH ROW EXECUTE FUNCTION lineage_requestlog_append_only();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS lineage_requestlog_append_only ON lineage_requestlog;
DROP FUNCTION IF EXISTS lineage_requestlog_append_only();
"""


class Migration(migrations.Migration):
    dependencies = [("lineage", "0001_initial")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
