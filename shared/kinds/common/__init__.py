"""What several kinds share (scrubbing secrets out of what they report)."""
