"""What the registry says about versions: published, listed with their status, verified."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Status = Literal["champion", "challenger", "retired"]


@dataclass(frozen=True, slots=True)
class PublishedVersion:
    key: str
    version: str
    sha256: str  # SHA-256 of the canonical manifest: identifies the model and its metadata
    path: Path


@dataclass(frozen=True, slots=True)
class VersionInfo:
    key: str
    version: str
    status: Status
    sha256: str | None  # None when the manifest cannot be read
    created_at: str | None
    signed: bool
    path: Path


@dataclass(frozen=True, slots=True)
class VerificationResult:
    key: str
    version: str
    ok: bool
    file: str | None = None
    problem: str | None = None
