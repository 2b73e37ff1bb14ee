"""Subcommands of the ``fastgram`` command beyond ``info``: each module has
``HELP``, ``configure(parser)`` and ``run(args) -> int``."""


class CommandError(Exception):
    """A user error: printed as one line, exit status 2."""
