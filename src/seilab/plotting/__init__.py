"""seilab.plotting."""
