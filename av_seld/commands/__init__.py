"""Subcommands of the ``av-seld`` command that live outside cli.py; each module defines ``register(subparsers)``."""
