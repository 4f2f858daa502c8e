"""SyncDesk entry point: hands the command line to the application shell."""

import sys

from app.cli import main

if __name__ == "__main__":
    sys.exit(main())
