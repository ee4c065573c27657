"""Fine-tuning recipes (prompt-conditioned TUSS)."""
