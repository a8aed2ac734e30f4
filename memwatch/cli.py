"""The ``memwatch`` console script's entry point (pyproject: ``memwatch.cli:main``).

The command line itself lives in memwatch/commands/, one module per subcommand.
"""

from .commands import main

__all__ = ["main"]
