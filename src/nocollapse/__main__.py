import sys

from nocollapse.cli.main import main

sys.exit(main())
