# Databricks notebook source
# MAGIC %md
# MAGIC # 3. Silver: orders enriched
# MAGIC
# MAGIC `orders_enriched` at order-line grain (one row per Row ID): dates parsed as `d/M/yyyy`, year from the Order Date,
# MAGIC sales and profit as DECIMAL rounded to 2 decimals, customer name and country, product category and
# MAGIC sub-category. A line whose customer or product is missing is kept and labelled `Unknown`; a line that breaks a
# MAGIC quarantine rule goes to `quarantine` with its reasons; anomalies are kept and listed in `quality_flags`.
# MAGIC Brought up to date by a `MERGE` on `row_id`; the task adds its rows and seconds to the run.
# MAGIC
# MAGIC The next two cells install the `ecom_lakehouse` package and its dependencies from the files of the bundle this
# MAGIC notebook was deployed with (`..` is the bundle root), the same way on serverless, standard and dedicated compute.

# COMMAND ----------

# MAGIC %pip install --quiet --disable-pip-version-check ..

# COMMAND ----------

dbutils.library.restartPython()

# COMMAND ----------

from ecom_lakehouse.run.tasks import run_task

display(run_task(spark, dbutils, "silver_orders"))
