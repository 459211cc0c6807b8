"""`instashare`: the command-line client for an Instashare server (Click + Rich)."""
