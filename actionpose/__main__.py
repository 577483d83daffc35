import sys

from actionpose.cli import main

sys.exit(main())
