"""``python -m av_seld`` runs the ``av-seld`` command line."""

from av_seld.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
