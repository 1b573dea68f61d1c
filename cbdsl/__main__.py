"""`python -m cbdsl`: the cbdsl command line."""

from cbdsl.cli import main

raise SystemExit(main())
