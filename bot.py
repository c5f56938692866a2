"""chipwatch entry point: ``python bot.py COMMAND`` (run, once, demo, match, check-config)."""

import sys

from alerts.cli import main

if __name__ == "__main__":
    sys.exit(main())
