"""``python -m rangeio``: the command line (see rangeio.cli)."""

from rangeio.cli import run

if __name__ == "__main__":
    run()
