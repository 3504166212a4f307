"""seilab.report."""
