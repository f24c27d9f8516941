"""`python -m aegir.kernels build`: compile the CPU kernels ahead of time and say whether they work."""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    if argv[:1] != ["build"]:
        print("usage: python -m aegir.kernels build", file=sys.stderr)
        return 2
    from aegir.kernels import wkv_cpu

    if wkv_cpu.load(verbose="-v" in argv) is None:
        # Not an error: the model falls back to the chunked PyTorch WKV.
        print(f"WKV CPU kernel not built ({wkv_cpu.unavailable_reason()}); the chunked PyTorch form will be used")
        return 0
    print("WKV CPU kernel built")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
