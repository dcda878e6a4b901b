# Databricks notebook source
# MAGIC %md
# MAGIC # 1. Bronze: ingest the raw sources
# MAGIC
# MAGIC Finds the orders (JSON), customers (Excel) and products (CSV) files under `input_path` (an S3 URI such as
# MAGIC `s3://bucket/raw/` or a Unity Catalog volume path) by the file-name patterns in `conf/pipeline.yml`, and writes
# MAGIC what is new, as it came, every field as source text, into `orders_raw`, `customers_raw` and `products_raw`, with
# MAGIC the source file, its SHA-256, the ingestion time and the run id of every row. This task starts the run in
# MAGIC `pipeline_runs` (`full_refresh=true` rebuilds every table from the current files) and decides what the next
# MAGIC tasks do. Widgets: `catalog`, the three schema names, `input_path`, `full_refresh`, `run_id` (the job run id).
# MAGIC
# MAGIC The next two cells install the `ecom_lakehouse` package and its dependencies from the files of the bundle this
# MAGIC notebook was deployed with (`..` is the bundle root), the same way on serverless, standard and dedicated compute.

# COMMAND ----------

# MAGIC %pip install --quiet --disable-pip-version-check ..

# COMMAND ----------

dbutils.library.restartPython()

# COMMAND ----------

from ecom_lakehouse.run.tasks import run_task

display(run_task(spark, dbutils, "bronze"))
