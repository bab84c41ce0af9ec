"""``python -m retrain_job ...``"""

import sys

from .cli import main

sys.exit(main())
