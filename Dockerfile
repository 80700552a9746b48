# One image for every cinedex service: Airflow components and workers, with the cinedex library installed.
FROM python:3.11-slim-bookworm

RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg \
    && rm -rf /var/lib/apt/lists/*

ENV AIRFLOW_HOME=/opt/airflow \
    CINEDEX_HOME=/opt/cinedex \
    PYTHONUNBUFFERED=1
WORKDIR /opt/cinedex-src

COPY requirements.txt pyproject.toml ./
RUN pip install --no-cache-dir uv==0.13.9 \
    && uv pip install --system --no-cache -r requirements.txt

COPY include ./include
RUN uv pip install --system --no-cache --no-deps -e .
COPY dags /opt/airflow/dags
COPY plugins /opt/airflow/plugins
