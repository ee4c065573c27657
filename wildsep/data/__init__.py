"""Audio data pipeline: corpus indexing, clip sampling, mixing, augmentation, demo corpus."""
