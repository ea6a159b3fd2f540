"""``python -m rangeio``: the command line (see rangeio.cli)."""

from rangeio.cli.main import run

if __name__ == "__main__":
    run()
