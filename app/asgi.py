"""The ASGI entry point for servers: `gunicorn -k uvicorn_worker.UvicornWorker app.asgi:app`."""

from app.web import create_app

app = create_app()
