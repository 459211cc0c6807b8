"""`python -m instashare_cli` runs the `instashare` command."""

from instashare_cli.main import cli

if __name__ == "__main__":
    cli()
