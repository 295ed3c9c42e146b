"""`python -m grok_tf` is `grok-tf`."""

import sys

from grok_tf.cli import main

sys.exit(main())
