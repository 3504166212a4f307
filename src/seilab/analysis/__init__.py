"""seilab.analysis."""
