"""Stages: one step of ``seilab run`` into its own folder each, with declared outputs.

Each stage module (:mod:`~seilab.stages.campaign`, :mod:`~seilab.stages.dataset`,
:mod:`~seilab.stages.ce`, :mod:`~seilab.stages.bo`, :mod:`~seilab.stages.failure`) declares the
names of the files it writes as module constants, runs its analysis (pure: settings in, result
out), writes the outputs atomically and its summary JSON last (``outputs`` written, ``skipped``
with the reason).  :mod:`~seilab.stages.registry` lists them in order;
:mod:`~seilab.stages.runfolder` holds the run folder's status file and lock;
:mod:`~seilab.stages.presets` the presets of ``seilab run``.  The loop over the stages and the
report live in :mod:`seilab.report`.
"""
