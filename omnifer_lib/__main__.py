"""``python -m omnifer_lib ...`` is the ``omnifer`` command."""
import sys

from omnifer_lib.publish.cli import main

sys.exit(main())
