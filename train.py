#!/usr/bin/env python3
"""Thin shim: `python train.py --task sotab-cta ...` == `aegir train --task sotab-cta ...` (same flags)."""

import sys

from aegir.cli import main

if __name__ == "__main__":
    sys.argv = [sys.argv[0], "train", *sys.argv[1:]]
    main()
