import sys

from ledgerflow.cli import main

sys.exit(main())
