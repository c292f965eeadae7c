"""The ``kling-async`` command line (``python -m kling_async`` or the ``kling-async`` script).

``main(argv)`` runs one command and returns its exit status; ``run_campaign(options)`` runs a
campaign file as ``kling-async run`` does, for programs that want the command's behaviour
(journal, downloads, manifest) without a subprocess. Every subcommand and option:
``kling-async --help``.
"""

from ._main import main as main
from ._run import RunOptions as RunOptions
from ._run import run_campaign as run_campaign

__all__ = ["RunOptions", "main", "run_campaign"]
