#!/usr/bin/env python
"""Train SAC from a checkout of Robot6 SAC, without installing it: the same command as ``robot6-train``
(``robot6.train``), with the same flags, files and exit codes.

    python Train_Robot6.py                      # a complete run with the default settings
    python Train_Robot6.py --resume             # continue the newest run where it stopped
    python Train_Robot6.py --help
"""

import sys

from robot6.train import main

if __name__ == "__main__":
    sys.exit(main())
