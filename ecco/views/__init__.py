"""Views: a record plus analysis results, turned into view data and rendered.

Each module takes a :class:`ecco.record.Record` (an ``OutputSeq`` is one), asks the core
modules for the numbers (through :mod:`ecco.access` for the checked selections) and returns a
:class:`ecco.render.View`, the JSON data of one (``printJson=True``) or a matplotlib figure.
This package is the only importer of :mod:`ecco.render`.
"""
