"""`python -m deploy start|stop`: the local CPU deployment (deploy/local.py)."""

from deploy.local import main

raise SystemExit(main())
