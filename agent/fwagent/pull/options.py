"""The PULL settings the poller, decision and retriever need, read from the agent config."""

from __future__ import annotations

from dataclasses import dataclass

from fwmapping import MappingConfig, policy_allows_value, policy_field

from fwagent.config import AgentConfig, PullConfig
from fwagent.pull.decide import Rules


@dataclass(frozen=True)
class PullOptions:
    """The pull section plus what it implies: the mapping (for the policy field) and the
    decision rules; every other setting is read from ``pull`` itself."""

    pull: PullConfig
    mapping: MappingConfig
    rules: Rules = Rules()

    @property
    def lookback_days(self) -> int:
        return self.pull.lookback_days

    @property
    def mark_existing_done(self) -> bool:
        return self.pull.mark_existing_done

    @property
    def retrieve_timeout_seconds(self) -> float:
        return self.pull.retrieve_timeout_seconds

    @property
    def dimse_timeout_seconds(self) -> float:
        return self.pull.dimse_timeout_seconds

    @property
    def policy_field(self) -> str:
        return policy_field(self.mapping)

    def allows(self, value: str | None) -> bool:
        return policy_allows_value(value, self.mapping.policy)

    @classmethod
    def from_config(cls, config: AgentConfig) -> PullOptions:
        pull = config.pull
        return cls(
            pull=pull,
            mapping=config.mapping_config(),
            rules=Rules(
                max_failures=pull.max_failures,
                retry_backoff_seconds=pull.retry_backoff_seconds,
                retry_backoff_max_seconds=pull.retry_backoff_max_seconds,
                forget_after_seconds=pull.forget_after_seconds,
            ),
        )
