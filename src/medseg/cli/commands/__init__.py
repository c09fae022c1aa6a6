"""One module per ``medseg`` subcommand.

Each module defines ``NAME`` (the subcommand), ``HELP`` (one line), ``add_arguments(parser)``
and ``run(args) -> int``. Modules import heavy libraries inside ``run`` only, so that
``medseg --help`` stays fast. ``medseg.cli.main`` discovers them automatically.
"""
