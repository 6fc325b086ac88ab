#!/usr/bin/env python
"""Thin wrapper: same as `av-seld evaluate REF_DIR PRED_DIR [options]`."""

import sys

from av_seld.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))
