import sys

from routellm_demo.cli import main

sys.exit(main())
