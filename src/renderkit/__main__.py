"""``python -m renderkit`` runs the CLI."""

import sys

from renderkit.cli import main

sys.exit(main())
