# syntax=docker/dockerfile:1
# The Instashare API image: `instashare-server serve` (gunicorn + uvicorn workers) on port 8000.
# Build: docker build -t instashare-api .
# Migrations are a separate one-shot command: docker run --rm --env-file .env instashare-api
#   instashare-server migrate   (docker-compose.yml runs it as the `migrate` service).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- builder: the pinned, hash-checked dependencies in a venv ----------------------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
COPY requirements.lock /tmp/requirements.lock
# --require-hashes: every wheel must match the lock; --only-binary: the slim image has no compiler.
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
# A fixed numeric uid/gid so volumes and Kubernetes runAsNonRoot agree with the image.
RUN groupadd --system --gid 10001 instashare \
    && useradd --system --uid 10001 --gid instashare --no-create-home \
        --home-dir /var/lib/instashare --shell /usr/sbin/nologin instashare \
    && mkdir -p /var/lib/instashare/spool \
    && chown -R instashare:instashare /var/lib/instashare
COPY --from=builder /opt/venv /opt/venv
WORKDIR /var/lib/instashare
USER 10001:10001
# `serve` listens on INSTASHARE_PORT; change the port there (not with --port) and the
# health check below follows it.
ENV INSTASHARE_PORT=8000
EXPOSE 8000
# Liveness only (no dependency is touched); slim has no curl, so Python asks.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request as u; r = u.urlopen('http://127.0.0.1:%s/api/v1/health' % os.environ['INSTASHARE_PORT'], timeout=4); sys.exit(0 if r.status == 200 else 1)"]
CMD ["instashare-server", "serve"]
