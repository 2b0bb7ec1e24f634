import sys

from provider_rke2.cli import main

sys.exit(main())
