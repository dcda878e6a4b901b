# Databricks notebook source
# MAGIC %md
# MAGIC # 4. Gold: profit aggregate
# MAGIC
# MAGIC `profit_aggregate`: profit (DECIMAL) and order-line count by year, product category, product sub-category and
# MAGIC customer. The run then reconciles: bronze order lines = silver lines + quarantined lines, and silver profit =
# MAGIC gold profit; if either breaks, the task fails.

# COMMAND ----------

dbutils.widgets.text("catalog", "main")
dbutils.widgets.text("bronze_schema", "ecom_bronze")
dbutils.widgets.text("silver_schema", "ecom_silver")
dbutils.widgets.text("gold_schema", "ecom_gold")
dbutils.widgets.text("run_id", "")

# COMMAND ----------

from ecom_lakehouse.pipeline import RunLog, build_gold, new_run_id, open_from_widgets

lakehouse = open_from_widgets(spark, dbutils.widgets)
run = RunLog(dbutils.widgets.get("run_id") or new_run_id())
build_gold(lakehouse, run)

# COMMAND ----------

display(run.summary(spark))
