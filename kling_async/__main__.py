"""``python -m kling_async`` runs the ``kling-async`` command line."""

import sys

from .cli._main import main

sys.exit(main())
