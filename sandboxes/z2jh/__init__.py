"""Vendored Zero to JupyterHub chart files (schema, defaults); see README.md."""
