"""Blindspot's client side: the Python SDK (``blindspot.sdk``) and the ``blindspot`` CLI."""
