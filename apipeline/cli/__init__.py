"""The ``apipeline`` command line.

* :mod:`~apipeline.cli.main`: the entry point; finds the subcommand modules and dispatches.
* :mod:`~apipeline.cli.run`: ``apipeline run GRAPH`` (progress bar on files, live line on streams).
* :mod:`~apipeline.cli.convert`: ``apipeline convert GRAPH IN_DIR OUT_DIR`` (batch, parallel processes).
* :mod:`~apipeline.cli.graph`: ``apipeline graph show|check|schema``.
* :mod:`~apipeline.cli.list_cmd`: ``apipeline list`` (registered processor types).
* :mod:`~apipeline.cli.bench`: ``apipeline bench`` (the scripts in ``benchmarks/``).
* :mod:`~apipeline.cli.progress`: progress display (rich when installed, plain text otherwise).

A subcommand module exposes ``add_parser(subparsers) -> None`` and ``run(args) -> int``; listing its name
in :data:`apipeline.cli.main.SUBCOMMANDS` (or an entry point in the group ``apipeline.cli``) plugs it in.
"""
