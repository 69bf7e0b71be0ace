"""python predict.py data.dir=DIR model=NAME submission=PATH [key=value ...]"""

import sys

from seqrec.cli import run
from seqrec.predict import COMMAND, main

if __name__ == "__main__":
    sys.exit(run(COMMAND, main))
