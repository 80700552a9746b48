"""The search index: one backend interface, its two implementations, and hybrid search over either."""
