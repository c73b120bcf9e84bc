"""Ingest use cases, one module each: rows (image upload), imports (boxes), exports, catalog (CRUD)."""
