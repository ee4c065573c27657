"""Pre-training recipes (unsupervised: MixIT, Self-Remixing, remixing)."""
