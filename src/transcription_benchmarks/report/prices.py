"""Instance prices for the cost guard and the price-per-audio-hour columns.

The table is a TOML file the user can edit (report/prices.toml ships one, dated): prices change
and differ by region and contract, so nothing is fetched from the network and a missing price is
shown as unknown rather than guessed.

```toml
as_of = "2026-11-01"
currency = "USD"
[regions.us-east-1]
"ml.g5.xlarge" = 1.408          # per instance-hour
```
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from pydantic import BaseModel, Field, field_validator

from transcription_benchmarks.errors import BenchError
from transcription_benchmarks.tomlfile import load_toml

DEFAULT_PRICES = "prices.toml"


class PriceTableError(BenchError):
    """A price table cannot be read or holds something that is not a price."""


class PriceTable(BaseModel):
    as_of: str = Field(description="when the figures were copied; they go stale")
    currency: str = "USD"
    source: str = ""
    regions: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="region -> instance type -> price per instance-hour"
    )

    @field_validator("regions")
    @classmethod
    def _positive(cls, regions: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for region, prices in regions.items():
            for instance_type, price in prices.items():
                if price <= 0:
                    raise ValueError(f"{region} {instance_type}: price must be > 0, got {price}")
        return regions

    def hourly(self, instance_type: str, region: str) -> float | None:
        """Price per instance-hour, or None when the table does not know it."""
        return self.regions.get(region, {}).get(instance_type)

    def per_audio_hour(self, instance_type: str, region: str, speed: float | None) -> float | None:
        """What one hour of audio costs at `speed` (x real time): the hourly price / speed."""
        hourly = self.hourly(instance_type, region)
        if hourly is None or not speed:
            return None
        return hourly / speed


def default_prices_path() -> Path:
    return Path(str(resources.files("transcription_benchmarks.report") / DEFAULT_PRICES))


def load_prices(path: str | Path | None = None) -> PriceTable:
    """The shipped table, or the TOML file at `path` (same layout)."""
    path = Path(path) if path is not None else default_prices_path()
    return load_toml(PriceTable, path, "price table", PriceTableError)


def money(value: float | None, currency: str = "USD") -> str:
    if value is None:
        return "-"
    symbol = "$" if currency == "USD" else f"{currency} "
    return f"{symbol}{value:.3f}" if value < 1 else f"{symbol}{value:,.2f}"
