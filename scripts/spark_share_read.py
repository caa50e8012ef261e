"""Read a shared table with Spark's Delta Sharing connector (docs/SHARING.md).

    python scripts/spark_share_read.py /path/lake.share#lake.tables.transactions [version]

Needs the connector's jar, fetched from Maven Central by `spark.jars.packages` (the
build machines of this project cannot reach it: run it where Maven Central is
reachable, e.g. the compose `spark-share` service). Prints the schema, the row count
and five rows.
"""

from __future__ import annotations

import os
import sys

# Spark 4 is built with Scala 2.13; the connector of the same Delta major version.
PACKAGE = os.environ.get("DELTA_SHARING_SPARK_PACKAGE", "io.delta:delta-sharing-spark_2.13:4.0.0")


def main() -> None:
    from pyspark.sql import SparkSession

    table = sys.argv[1]
    spark = (
        SparkSession.builder.appName("delta-sharing-read")
        .master(os.environ.get("SPARK_MASTER", "local[*]"))
        .config("spark.jars.packages", PACKAGE)
        .getOrCreate()
    )
    reader = spark.read.format("deltaSharing")
    if len(sys.argv) > 2:
        reader = reader.option("versionAsOf", int(sys.argv[2]))
    df = reader.load(table)
    df.printSchema()
    print("rows:", df.count())
    df.show(5, truncate=False)
    spark.stop()


if __name__ == "__main__":
    main()
