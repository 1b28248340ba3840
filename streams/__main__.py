"""``python -m streams``: the kpistream command, as the installed ``kpistream`` script runs it."""

import sys

from streams.commands.cli import main

if __name__ == "__main__":
    sys.exit(main())
