"""Every SQL statement of the gateway, split by use case (auth, runs, gallery, labeling, catalog)."""
