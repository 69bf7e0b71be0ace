"""`python -m seqrec.synth`: write a synthetic hear-me data set (the generator is seqrec.data.synth)."""

from seqrec.data.synth import main

if __name__ == "__main__":
    main()
