"""Hostile probes, one module per group of defects; each module has a PROBES dict (name -> probe)."""
