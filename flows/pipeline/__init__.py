"""The secure-zone data pipeline: read the source extracts, pseudonymise, link, report.

Everything in this package may see real person-level rows; what it logs, reports or
raises carries counts, column names and line numbers only.
"""
