# Databricks notebook source
# MAGIC %md
# MAGIC # 2. Silver: customers and products
# MAGIC
# MAGIC `customers`: one row per Customer ID; the name repaired (injected digits, symbols and stray spaces removed,
# MAGIC look-alike characters read back, Unicode letters, apostrophes and hyphens kept) beside the raw name; phone in
# MAGIC E.164 or null; postal code zero-padded to 5 digits. `products`: one row per Product ID, chosen by a deterministic
# MAGIC rule, flagged where duplicates conflicted. Records that break a quarantine rule go to `quarantine` with reasons.

# COMMAND ----------

dbutils.widgets.text("catalog", "main")
dbutils.widgets.text("bronze_schema", "ecom_bronze")
dbutils.widgets.text("silver_schema", "ecom_silver")
dbutils.widgets.text("gold_schema", "ecom_gold")
dbutils.widgets.text("run_id", "")

# COMMAND ----------

from ecom_lakehouse.pipeline import RunLog, build_silver_dimensions, new_run_id, open_from_widgets

lakehouse = open_from_widgets(spark, dbutils.widgets)
run = RunLog(dbutils.widgets.get("run_id") or new_run_id())
build_silver_dimensions(lakehouse, run)

# COMMAND ----------

display(run.summary(spark))
