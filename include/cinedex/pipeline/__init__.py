"""The pipeline stages, one module per task of the index DAG; each callable and testable without Airflow."""
