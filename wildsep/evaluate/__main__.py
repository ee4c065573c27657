"""`python -m wildsep.evaluate CKPT --set MANIFEST`: the same as `wildsep evaluate`."""

import sys

from wildsep.evaluate.run import main

sys.exit(main())
