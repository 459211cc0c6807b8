"""The ASGI entry point for servers: `gunicorn -k app.http.protocol.Worker app.asgi:app`."""

from app.observability import configure_logging
from app.settings import Settings
from app.web import create_app

settings = Settings.from_env()
configure_logging(settings.log_level)
app = create_app(settings)
