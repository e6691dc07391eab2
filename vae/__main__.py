"""`python -m vae ...`: see vae/cli.py."""

from vae.cli import main

raise SystemExit(main())
