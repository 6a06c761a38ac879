"""Fixtures shared by every test layer."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
# The TGI reference data lives beside the checkout in CI (../shared). The project never needs
# it to run; contract tests use it to check the project's own copies of TGI facts.
TGI_REFERENCE = REPO_ROOT.parent / "shared" / "reference" / "tgi"


@pytest.fixture(scope="session")
def tgi_reference() -> Path:
    """Folder with TGI's launcher.md, openapi.json and metrics.md, or skip the contract test."""
    if not TGI_REFERENCE.is_dir():
        pytest.skip(
            f"TGI reference data not present at {TGI_REFERENCE} (only CI and dev machines have it)"
        )
    return TGI_REFERENCE
