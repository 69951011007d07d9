"""What the experiments API reads and answers: the requests (pydantic, validated at the edge) and the answers
(dataclasses pydantic serialises and describes in `/openapi.json`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..gateways import GATEWAY_ID_PATTERN

Status = Literal["active", "paused", "completed"]
STATUSES: Final[tuple[Status, ...]] = ("active", "paused", "completed")

EXPERIMENT_ID_PATTERN: Final = r"^exp_[0-9a-f]{16}$"
MAX_VARIANTS: Final = 10
"""The most variants one experiment may have (control included)."""
VARIANT_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"

VariantName = Annotated[str, Field(pattern=VARIANT_PATTERN, description="A variant's name; the first is the control")]
ExperimentId = Annotated[str, Field(pattern=EXPERIMENT_ID_PATTERN, description="An experiment's id")]
Project = Annotated[str, Field(pattern=GATEWAY_ID_PATTERN, description="The project (gateway) id")]


class ExperimentCreate(BaseModel):
    """`POST /experiments`: seed 002's project, name, variants and goal_event, and an optional traffic split."""

    model_config = ConfigDict(extra="forbid")

    project: Project | None = Field(
        default=None, description="Required with the admin token; an account key with one project may leave it out"
    )
    name: str = Field(min_length=1, max_length=200, pattern=r"\S")
    variants: list[VariantName] = Field(min_length=2, max_length=MAX_VARIANTS)
    goal_event: str = Field(min_length=1, max_length=200, pattern=r"\S")
    traffic_split: dict[VariantName, float] | None = Field(
        default=None,
        description="Weight per variant (any positive numbers, e.g. 50/50 or 0.9/0.1); every variant once. "
        "Default: an equal split.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentCreate:
        if len(set(self.variants)) != len(self.variants):
            raise ValueError("variants must be distinct")
        if self.traffic_split is not None:
            if set(self.traffic_split) != set(self.variants):
                raise ValueError("traffic_split must give a weight to every variant, and to no other")
            if not all(0 < weight < 1e9 for weight in self.traffic_split.values()):
                raise ValueError("traffic_split weights must be positive numbers below 1e9")
        return self

    def weights(self) -> list[float]:
        if self.traffic_split is None:
            return [1.0] * len(self.variants)
        return [float(self.traffic_split[variant]) for variant in self.variants]


class ExperimentPatch(BaseModel):
    """`PATCH /experiments/{id}`: the status (required, seed 002) and, once completed, the winner."""

    model_config = ConfigDict(extra="forbid")

    status: Status
    winner: VariantName | None = Field(
        default=None, description="One of the variants, with status completed only; completed without one is allowed"
    )

    @model_validator(mode="after")
    def _winner_when_completed(self) -> ExperimentPatch:
        if self.winner is not None and self.status != "completed":
            raise ValueError("a winner is set only with status completed")
        return self


class ExperimentListArgs(BaseModel):
    """`GET /experiments`: optionally only those of one status."""

    model_config = ConfigDict(extra="forbid")

    status: Status | None = None


class ExperimentArgs(BaseModel):
    """`GET /experiments/{id}`."""

    model_config = ConfigDict(extra="forbid")

    id: ExperimentId


class ProjectArgs(BaseModel):
    """`?project=` of PATCH and DELETE."""

    project: Project


class ConfigArgs(BaseModel):
    """`GET /experiments/config`: the project token (`token`, the gateway's pk_ key) and, optionally, a visitor."""

    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=1, max_length=200, description="The project token: the gateway's pk_ key")
    visitor_id: str | None = Field(
        default=None, min_length=1, max_length=200, description="With it, each experiment's variant for this visitor"
    )


@dataclass(frozen=True, slots=True)
class Experiment:
    """An experiment as the API shows it; times are ms since the epoch."""

    id: str
    project: str
    name: str
    variants: list[str]
    traffic_split: dict[str, float]
    """Each variant's share of visitors, summing to 1."""
    goal_event: str
    status: Status
    winner: str | None
    control: str
    """The variant the others are compared with: the first."""
    created_at: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class ExperimentList:
    experiments: list[Experiment]
    count: int


@dataclass(frozen=True, slots=True)
class Interval:
    lower: float
    upper: float
    level: float


@dataclass(frozen=True, slots=True)
class VariantResult:
    """One variant's numbers. Rates are decimals (0-1). The comparisons with the control are null for the control
    itself and wherever they are undefined (no users yet, a control rate of 0 for `lift`)."""

    variant: str
    is_control: bool
    exposures: int
    """Exposure events recorded (one per visitor and experiment from tracker.js)."""
    unique_users: int
    """Distinct visitors exposed: the denominator of the conversion rate."""
    conversions: int
    """Distinct visitors tagged with this variant who sent the goal event."""
    conversion_events: int
    """Goal events tagged with this variant."""
    conversion_rate: float | None
    conversion_rate_interval: Interval | None
    """Wilson score interval of the conversion rate."""
    difference: float | None
    """conversion_rate - the control's (absolute)."""
    confidence_interval: Interval | None
    """Newcombe's interval of `difference`."""
    lift: float | None
    """difference / the control's rate (relative)."""
    p_value: float | None
    """Two-sided pooled two-proportion z-test against the control."""
    probability_to_beat_control: float | None
    """P(this variant's rate > the control's), Beta-Binomial posteriors with uniform priors, computed exactly."""
    significant: bool
    """p_value < 0.05 and every variant reached `minimum_users_per_variant` (a fixed-horizon reading)."""


@dataclass(frozen=True, slots=True)
class SampleRatio:
    """Pearson's chi-square test of the users per variant against the configured split."""

    p_value: float | None
    mismatch: bool
    """p_value below 0.001: the split is broken (assignment, redirects, bots); do not trust the results."""
    expected: dict[str, float]
    observed: dict[str, float]


@dataclass(frozen=True, slots=True)
class Flag:
    """Something to surface to the user: `no_goal_conversions`, `sample_ratio_mismatch`."""

    type: str
    message: str


@dataclass(frozen=True, slots=True)
class Results:
    control: str
    variants: list[VariantResult]
    total_exposures: int
    total_users: int
    total_conversions: int
    sample_ratio: SampleRatio
    minimum_users_per_variant: int
    sample_size_reached: bool
    method: str


@dataclass(frozen=True, slots=True)
class ExperimentResults(Experiment):
    """`GET /experiments/{id}`: the experiment, its live results and its flags."""

    results: Results
    flags: list[Flag]


@dataclass(frozen=True, slots=True)
class ConfigExperiment:
    id: str
    name: str
    variants: list[str]
    weights: list[float]
    """One per variant, in order: the split tracker.js assigns by (`assignment.assign`)."""
    goal_event: str
    variant: str | None = None
    """The visitor's variant, when `visitor_id` was given."""


@dataclass(frozen=True, slots=True)
class ExperimentConfig:
    """`GET /experiments/config`: the active experiments tracker.js assigns visitors to."""

    project: str
    experiments: list[ConfigExperiment]


@dataclass(frozen=True, slots=True)
class Deleted:
    id: str
    deleted: bool
