import sys

from raddiff_synth.cli import main

sys.exit(main())
