"""Instashare: the API (spec → handlers → services → models/storage)."""
