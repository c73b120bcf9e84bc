"""`blindspot demo`: the demo data set and the steps that load it through the gateway."""
