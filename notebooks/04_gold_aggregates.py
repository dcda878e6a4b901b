# Databricks notebook source
# MAGIC %md
# MAGIC # 4. Gold: profit aggregate
# MAGIC
# MAGIC `profit_aggregate`: profit (DECIMAL) and order-line count by year, product category, product sub-category and
# MAGIC customer. The run then reconciles (bronze order lines = silver lines + quarantined + superseded lines; silver
# MAGIC profit = gold profit) and is recorded `succeeded` in `pipeline_runs` with the figures and the records per rule;
# MAGIC if a check breaks, the task fails and the run is recorded `failed`.
# MAGIC
# MAGIC The next two cells install the `ecom_lakehouse` package and its dependencies from the files of the bundle this
# MAGIC notebook was deployed with (`..` is the bundle root), the same way on serverless, standard and dedicated compute.

# COMMAND ----------

# MAGIC %pip install --quiet --disable-pip-version-check ..

# COMMAND ----------

dbutils.library.restartPython()

# COMMAND ----------

from ecom_lakehouse.run.tasks import run_task

display(run_task(spark, dbutils, "gold"))
