"""One module per `hackgap` command group; each is thin over plain functions."""
