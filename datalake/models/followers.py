"""Where each follower stands: the versions it has derived (datalake.lake.followers).

A merge writes a resource's rows and its version; followers derive from committed
versions what reads need besides (the search entries, the metrics aggregates), in version
order, each recording here, in the transaction that wrote what it derived, the last
version it has derived. A follower killed at any point therefore resumes exactly after
the last version whose derived state committed.
"""

from django.db import models


class FollowerPosition(models.Model):
    follower = models.CharField(max_length=40, help_text="`search`, `metrics`, ...")
    resource = models.ForeignKey(
        "datalake.Resource", on_delete=models.CASCADE, related_name="follower_positions"
    )
    derived_through_version = models.PositiveIntegerField(
        default=0, help_text="Every version up to this one is derived."
    )
    derived_at = models.DateTimeField(null=True, help_text="When the position last moved.")

    class Meta:
        db_table = "lake_follower_position"
        constraints = [
            models.UniqueConstraint(
                fields=["follower", "resource"], name="follower_position_unique"
            )
        ]

    def __str__(self):
        return f"{self.follower} of {self.resource_id} at v{self.derived_through_version}"


class SearchLine(models.Model):
    """The landed file's line of each row a file's merge wrote, kept by that merge for the
    search follower (the stage it comes from is gone once the merge commits); the follower
    deletes a version's lines when it has indexed them."""

    id = models.BigAutoField(primary_key=True)
    resource = models.CharField(max_length=100)
    version = models.PositiveIntegerField()
    key = models.CharField(max_length=200)
    line = models.PositiveIntegerField()

    class Meta:
        db_table = "search_lines"
        indexes = [models.Index(fields=["resource", "version"], name="search_lines_version")]
