"""Campaigns: designs, executors, the Parquet store and manifest, resume."""

from seilab.campaign.store import load_dataset, read_manifest

__all__ = ["load_dataset", "read_manifest"]
