"""The ranking stage: candidates from named sources, their named features, and the rankers fitted on them.

sources.py (the candidate sources) <- features.py (the features, by level) <- evidence.py (the log-wide tables and
a shard's evidence) <- candidates.py (a batch's candidates with every feature) <- rankers.py (GBDT, by-feature;
fit, cross-fit, top-k). It reads the log through seqrec.logstats and never a baseline or the network: a scorer's
view of the catalog comes in as `sources.Scores`.
"""
