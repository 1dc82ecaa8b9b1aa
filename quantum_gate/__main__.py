import sys

from quantum_gate.cli import main

sys.exit(main())
