"""Instashare's job path: queue → task → services → storage."""
