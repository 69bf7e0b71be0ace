"""The recommendation service: `python -m seqrec.serve run.dir=RUN`; see README "Recommendation service"."""
