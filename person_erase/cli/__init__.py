"""The ``person-erase`` command line: a thin layer over the Python API.

The only part of the package that knows argparse and ``--flags``. One module per command, each with
``register(subparsers)`` (its arguments) and ``run(args, say) -> int`` (its work):

- ``segment.py``  ``person-erase segment``
- ``erase.py``    ``person-erase erase`` and ``person-erase redact``
- ``batch.py``    ``person-erase batch``
- ``serve.py``    ``person-erase serve-dashscope``

``app.py`` builds the parser from ``COMMANDS`` and maps errors to exit codes; ``options.py`` holds the
option groups shared by several commands; ``helpers.py`` the progress display and side-output checks.

Every failure ends with exit status 1 and one line ``error: …`` on stderr (usage errors: status 2,
from argparse); no output file is left behind. ``--debug`` (or ``PERSON_ERASE_DEBUG=1``) shows the
traceback instead.
"""

from __future__ import annotations

from .app import build_parser, main
from .options import add_local_options

__all__ = ["add_local_options", "build_parser", "main"]
