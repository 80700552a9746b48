"""The cinedex page: its HTTP API, the library it shows, uploads, runs, and the run report."""
