"""Engines: one definition (``eventlog.core.definitions``) folded, merged and rendered as SQL
by each engine behind one protocol (``eventlog.engines.base``)."""
