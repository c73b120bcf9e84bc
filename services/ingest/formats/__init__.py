"""Annotation and prediction file formats: parse into a BoxTable, write a BoxTable back out. No I/O."""
