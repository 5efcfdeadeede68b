"""``python -m person_erase`` is the ``person-erase`` command."""

import sys

from .cli import main

sys.exit(main())
