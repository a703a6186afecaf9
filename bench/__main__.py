"""`python -m bench --scale N [--seed S] [--stages generate,ingest,...]`: see bench.run."""

import sys

from bench.run import main

sys.exit(main())
