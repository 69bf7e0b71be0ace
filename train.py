"""python train.py data.dir=DIR run.dir=RUN [preset=demo|gpu] [key=value ...]"""

import sys

from seqrec.config import load_config
from seqrec.train import train

if __name__ == "__main__":
    train(load_config(sys.argv[1:]))
