"""The analysis table's declared schema as plain data, so `synthetic` never reads flows files.

The flows parse `flows/schemas/analysis_table.yaml` and hand the mapping here; types and
roles come from that declaration, never from guessing on the data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from synthetic.errors import TwinError

TYPES = ("categorical", "ordinal", "numerical", "boolean", "id")
ROLES = ("key", "provenance", "quasi_identifier", "sensitive", "analysis")


@dataclass(frozen=True)
class ColumnSpec:
    """One declared column: its type, role and (for ordinals) its order, lowest first."""

    name: str
    type: str
    role: str
    order: tuple[Any, ...] | None = None
    values: tuple[Any, ...] | None = None
    description: str = ""

    @property
    def synthesised(self) -> bool:
        """Keys and provenance never reach a synthesizer."""
        return self.role not in ("key", "provenance") and self.type != "id"


@dataclass(frozen=True)
class TableSchema:
    """The declared analysis table."""

    name: str
    columns: tuple[ColumnSpec, ...]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TableSchema:
        """Build from the parsed schema YAML; reject types/roles this stage cannot honour."""
        columns = []
        for name, spec in (data.get("columns") or {}).items():
            kind, role = spec.get("type"), spec.get("role")
            if kind not in TYPES or role not in ROLES:
                raise TwinError(
                    f"schema column '{name}': type '{kind}' / role '{role}' is not one of "
                    f"{'|'.join(TYPES)} / {'|'.join(ROLES)}; fix the schema file."
                )
            if kind == "ordinal" and not spec.get("order"):
                raise TwinError(
                    f"schema column '{name}': ordinal without an order; list its levels, "
                    "lowest first, under `order`."
                )
            columns.append(
                ColumnSpec(
                    name=name,
                    type=kind,
                    role=role,
                    order=tuple(spec["order"]) if spec.get("order") else None,
                    values=tuple(spec["values"]) if spec.get("values") else None,
                    description=str(spec.get("description", "")).strip(),
                )
            )
        return cls(name=str(data.get("name", "analysis")), columns=tuple(columns))

    def __getitem__(self, name: str) -> ColumnSpec:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def with_role(self, *roles: str) -> list[str]:
        return [c.name for c in self.columns if c.role in roles]

    @property
    def synthesised(self) -> list[ColumnSpec]:
        return [c for c in self.columns if c.synthesised]
