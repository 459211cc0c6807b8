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
# The project itself is NOT pip-installed: `pip install .` would move app/ into site-packages,
# where app/web.py could no longer find swagger/ (it looks in Path(app.__file__).parent.parent).
# The source runs from /srv/instashare via PYTHONPATH instead, and this script is the console
# entry point that `[project.scripts] instashare-server = "app.cli:main"` would have generated.
RUN printf '%s\n' '#!/opt/venv/bin/python' 'import sys' 'from app.cli import main' \
        'sys.exit(main())' > /opt/venv/bin/instashare-server \
    && chmod 0755 /opt/venv/bin/instashare-server

# --- runtime --------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/srv/instashare \
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
WORKDIR /srv/instashare
# Source stays root-owned and read-only for the service user; swagger/ sits beside app/.
COPY pyproject.toml ./
COPY app/ app/
COPY worker/ worker/
COPY swagger/ swagger/
RUN python -m compileall -q app worker
USER 10001:10001
EXPOSE 8000
# Liveness only (no dependency is touched); slim has no curl, so Python asks.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request as u; r = u.urlopen('http://127.0.0.1:8000/api/v1/health', timeout=4); sys.exit(0 if r.status == 200 else 1)"]
CMD ["instashare-server", "serve"]
