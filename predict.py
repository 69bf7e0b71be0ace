"""python predict.py data.dir=DIR model=NAME submission=PATH [key=value ...]"""

import sys

from seqrec.config import load_config
from seqrec.predict import predict

if __name__ == "__main__":
    predict(load_config(sys.argv[1:]))
