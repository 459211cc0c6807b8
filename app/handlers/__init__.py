"""Thin HTTP handlers: validated arguments in, one service call, (body, status, headers) out."""
