"""``python -m seilab``: the ``seilab`` command (for example ``python -m seilab warmup``)."""

from seilab.cli import app

if __name__ == "__main__":
    app(prog_name="seilab")
