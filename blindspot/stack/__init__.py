"""The local stack: the dependencies (Postgres, Redis, S3, Qdrant, Triton) and the five services.

``blindspot stack deps`` makes the test suite's dependencies answer; ``blindspot stack up`` also starts
SeaweedFS, Triton (when enabled) and the services with their Celery workers (honcho, ``Procfile``).
Everything it starts is recorded under ``.stack/`` so ``stack down`` stops exactly that and no more.
"""
