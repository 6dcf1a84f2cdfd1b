"""Readers for the source extracts, each returning a validated canonical frame.

`read_municipal`, `read_cbs`, `read_postcodes` and `read_school` detect the file's
encoding, delimiter and decimal mark, validate it against the declared schemas in
`flows.pipeline.schemas` and report what they found in a `ReadResult`.
"""

from flows.pipeline.readers.cbs import read_cbs
from flows.pipeline.readers.municipal import read_municipal
from flows.pipeline.readers.postcodes import read_postcodes
from flows.pipeline.readers.school import read_school
from flows.pipeline.readers.table import ReadResult

__all__ = ["ReadResult", "read_cbs", "read_municipal", "read_postcodes", "read_school"]
