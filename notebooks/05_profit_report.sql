-- Databricks notebook source
-- MAGIC %md
-- MAGIC # Profit report
-- MAGIC
-- MAGIC The four profit aggregates over the gold table `profit_aggregate`: by year; by year and product category;
-- MAGIC by customer; by customer and year. Each is also created as a view in the gold schema so analysts, Databricks SQL
-- MAGIC dashboards and BI tools (Power BI, Tableau through a SQL warehouse) query the same definition.
-- MAGIC
-- MAGIC This file is the single source of the report queries: the job runs it on Databricks and `ecom report` runs it
-- MAGIC cell by cell on local Spark. Each result is named by its cell's title (`profit_by_year`, ...), which
-- MAGIC `ecom report`, `ecom remote report` and the charts use. Parameters: `catalog`, `gold_schema`.

-- COMMAND ----------

CREATE WIDGET TEXT catalog DEFAULT 'main';
CREATE WIDGET TEXT gold_schema DEFAULT 'ecom_gold';

-- COMMAND ----------

-- Views store the schema they were created in, so their bodies can name gold tables relative to it.
USE IDENTIFIER(:catalog || '.' || :gold_schema);

-- COMMAND ----------

-- MAGIC %md
-- MAGIC ## Profit by year
-- MAGIC
-- MAGIC With the profit that order lines flagged as value anomalies carry (`anomaly_profit`, `anomaly_lines`): they are
-- MAGIC kept and counted, so the totals never change because of a flag; the share says how much of a year's figure
-- MAGIC rests on lines an analyst should check.

-- COMMAND ----------

-- DBTITLE 1,profit_by_year
CREATE OR REPLACE VIEW profit_by_year
COMMENT 'Total profit (USD, DECIMAL) per order year; anomaly_profit: the part of it carried by the anomaly_lines order lines flagged as value anomalies (kept, counted in profit).'
AS SELECT year, CAST(SUM(profit) AS DECIMAL(28, 2)) AS profit, CAST(SUM(anomaly_profit) AS DECIMAL(28, 2)) AS anomaly_profit,
  CAST(SUM(anomaly_lines) AS BIGINT) AS anomaly_lines
FROM profit_aggregate
GROUP BY year;

SELECT year, profit, anomaly_profit, anomaly_lines FROM profit_by_year ORDER BY year;

-- COMMAND ----------

-- MAGIC %md
-- MAGIC ## Profit by year and product category

-- COMMAND ----------

-- DBTITLE 1,profit_by_year_category
CREATE OR REPLACE VIEW profit_by_year_category
COMMENT 'Total profit (USD, DECIMAL) per order year and product category.'
AS SELECT year, category, CAST(SUM(profit) AS DECIMAL(28, 2)) AS profit
FROM profit_aggregate
GROUP BY year, category;

SELECT year, category, profit FROM profit_by_year_category ORDER BY year, category;

-- COMMAND ----------

-- MAGIC %md
-- MAGIC ## Profit by customer

-- COMMAND ----------

-- DBTITLE 1,profit_by_customer
CREATE OR REPLACE VIEW profit_by_customer
COMMENT 'Total profit (USD, DECIMAL) per customer, all years.'
AS SELECT customer_id, customer_name, CAST(SUM(profit) AS DECIMAL(28, 2)) AS profit
FROM profit_aggregate
GROUP BY customer_id, customer_name;

SELECT customer_id, customer_name, profit FROM profit_by_customer ORDER BY profit DESC, customer_id;

-- COMMAND ----------

-- MAGIC %md
-- MAGIC ## Profit by customer and year

-- COMMAND ----------

-- DBTITLE 1,profit_by_customer_year
CREATE OR REPLACE VIEW profit_by_customer_year
COMMENT 'Total profit (USD, DECIMAL) per customer and order year.'
AS SELECT customer_id, customer_name, year, CAST(SUM(profit) AS DECIMAL(28, 2)) AS profit
FROM profit_aggregate
GROUP BY customer_id, customer_name, year;

SELECT customer_id, customer_name, year, profit FROM profit_by_customer_year ORDER BY customer_id, year;
