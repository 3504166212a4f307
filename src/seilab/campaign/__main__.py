"""``python -m seilab.campaign ...`` = ``seilab campaign ...``."""

from seilab.campaign.cli import main

if __name__ == "__main__":
    main()
