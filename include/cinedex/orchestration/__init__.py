"""The Airflow edge: the DAGs' ids and forms, the daily inbox, and setting up a deployment."""
