"""cinedex: long videos in, a searchable, timestamped semantic index out."""

# Bumped whenever a change alters what the pipeline writes; part of every artifact key and event id,
# so a new version never reuses stale artifacts and its documents replace the old ones.
PIPELINE_VERSION = "2"
