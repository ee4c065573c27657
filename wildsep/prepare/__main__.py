"""`python -m wildsep.prepare CORPUS ROOT --out DIR`: the same as `wildsep prepare`."""

import sys

from wildsep.prepare import main

sys.exit(main())
