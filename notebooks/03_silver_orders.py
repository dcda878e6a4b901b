# Databricks notebook source
# MAGIC %md
# MAGIC # 3. Silver: orders enriched
# MAGIC
# MAGIC `orders_enriched` at order-line grain (one row per Row ID): dates parsed as `d/M/yyyy`, year from the Order Date,
# MAGIC sales and profit as DECIMAL rounded to 2 decimals, customer name and country, product category and
# MAGIC sub-category. A line whose customer or product is missing is kept and labelled `Unknown`; a line that breaks a
# MAGIC quarantine rule goes to `quarantine` with its reasons; anomalies are kept and listed in `quality_flags`.

# COMMAND ----------

dbutils.widgets.text("catalog", "main")
dbutils.widgets.text("bronze_schema", "ecom_bronze")
dbutils.widgets.text("silver_schema", "ecom_silver")
dbutils.widgets.text("gold_schema", "ecom_gold")
dbutils.widgets.text("run_id", "")

# COMMAND ----------

from ecom_lakehouse.pipeline import RunLog, build_silver_orders, new_run_id, open_from_widgets

lakehouse = open_from_widgets(spark, dbutils.widgets)
run = RunLog(dbutils.widgets.get("run_id") or new_run_id())
build_silver_orders(lakehouse, run)

# COMMAND ----------

display(run.summary(spark))
