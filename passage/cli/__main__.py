"""``python -m passage.cli``: the ``passage`` command."""

import sys

from passage.cli import main

sys.exit(main())
