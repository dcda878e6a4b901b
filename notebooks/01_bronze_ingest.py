# Databricks notebook source
# MAGIC %md
# MAGIC # 1. Bronze: ingest the raw sources
# MAGIC
# MAGIC Finds the orders (JSON), customers (Excel) and products (CSV) files under `input_path` (an S3 URI such as
# MAGIC `s3://bucket/raw/` or a Unity Catalog volume path) by the file-name patterns in `conf/pipeline.yml`, and writes
# MAGIC them as they came, every field as source text, into `orders_raw`, `customers_raw` and `products_raw`, with the
# MAGIC source file, ingestion time and run id of every row. All logic is in the `ecom_lakehouse` package.

# COMMAND ----------

dbutils.widgets.text("catalog", "main")
dbutils.widgets.text("bronze_schema", "ecom_bronze")
dbutils.widgets.text("silver_schema", "ecom_silver")
dbutils.widgets.text("gold_schema", "ecom_gold")
dbutils.widgets.text("input_path", "")
dbutils.widgets.text("run_id", "")

# COMMAND ----------

from ecom_lakehouse.pipeline import RunLog, ingest_bronze, new_run_id, open_from_widgets

lakehouse = open_from_widgets(spark, dbutils.widgets)
run = RunLog(dbutils.widgets.get("run_id") or new_run_id())
ingest_bronze(lakehouse, dbutils.widgets.get("input_path"), run)

# COMMAND ----------

display(run.summary(spark))
