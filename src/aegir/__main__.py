"""`python -m aegir ...` (also what `torchrun -m aegir ...` runs)."""

from aegir.cli import main

main()
