"""seqrec: sequential music recommendation on hear-me listening logs."""

PAD = 0  # item index 0 is padding everywhere: embeddings, losses, masks, metrics
