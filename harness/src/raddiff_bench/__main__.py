import sys

from raddiff_bench.cli import main

sys.exit(main())
