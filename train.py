"""python train.py data.dir=DIR run.dir=RUN [preset=demo|gpu] [key=value ...]"""

import sys

from seqrec.cli import run
from seqrec.train import COMMAND, main

if __name__ == "__main__":
    sys.exit(run(COMMAND, main))
