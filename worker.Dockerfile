# syntax=docker/dockerfile:1
# The Instashare worker image: `instashare-server worker` (Celery, compression jobs). The same
# image runs the periodic sweeps alone with `instashare-server scheduler`.
# Build: docker build -f worker.Dockerfile -t instashare-worker .
# It is built like the API image.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- builder: the pinned, hash-checked dependencies in a venv ----------------------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
COPY requirements.lock /tmp/requirements.lock
RUN /opt/venv/bin/pip install --require-hashes --only-binary=:all: -r /tmp/requirements.lock
# Then the project itself, like any user installs it: a wheel that carries the contract
# (swagger/ as `app.spec`) and the `instashare-server` entry point. --no-deps: every
# dependency came from the lock above.
COPY pyproject.toml README.md /tmp/src/
COPY app/ /tmp/src/app/
COPY worker/ /tmp/src/worker/
COPY swagger/ /tmp/src/swagger/
COPY instashare_cli/ /tmp/src/instashare_cli/
RUN /opt/venv/bin/pip install --no-deps /tmp/src && rm -rf /tmp/src

# --- runtime --------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    INSTASHARE_DATA_DIR=/var/lib/instashare \
    INSTASHARE_SPOOL_DIR=/var/lib/instashare/spool
RUN groupadd --system --gid 10001 instashare \
    && useradd --system --uid 10001 --gid instashare --no-create-home \
        --home-dir /var/lib/instashare --shell /usr/sbin/nologin instashare \
    && mkdir -p /var/lib/instashare/spool \
    && chown -R instashare:instashare /var/lib/instashare
COPY --from=builder /opt/venv /opt/venv
WORKDIR /var/lib/instashare
USER 10001:10001
# Prometheus metrics of the worker processes (INSTASHARE_WORKER_METRICS_PORT; 0 turns it off).
EXPOSE 9808
# `check` tests the database, the broker, Redis and the storage and exits non-zero if one
# fails: a worker that cannot reach them cannot do its job either.
HEALTHCHECK --interval=60s --timeout=30s --start-period=30s --retries=3 \
    CMD ["instashare-server", "check"]
# Celery handles SIGTERM itself (warm shutdown); give it time: docker stop -t 60.
STOPSIGNAL SIGTERM
CMD ["instashare-server", "worker"]
