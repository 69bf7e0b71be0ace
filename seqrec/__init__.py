"""seqrec: sequential music recommendation on hear-me listening logs."""

PAD = 0  # item index 0 is padding everywhere: embeddings, losses, masks, metrics


def __getattr__(name: str):
    """`seqrec.load_run` without importing torch on `import seqrec`."""
    if name == "load_run":
        from seqrec.api import load_run

        return load_run
    raise AttributeError(f"module 'seqrec' has no attribute {name!r}")
