"""`python -m dposerx_blender`: see cli.py and docs/cli.md."""
from .cli import main

raise SystemExit(main())
