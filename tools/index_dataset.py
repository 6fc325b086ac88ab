#!/usr/bin/env python
"""Thin wrapper: same as `av-seld index DATASET_ROOT`."""

import sys

from av_seld.cli import main

if __name__ == "__main__":
    sys.exit(main(["index", *sys.argv[1:]]))
