"""The PULL settings the poller, decision and retriever need, read from the agent config."""

from __future__ import annotations

from dataclasses import dataclass

from fwmapping import MappingConfig, policy_allows_value, policy_field

from fwagent.config import AgentConfig, PullConfig
from fwagent.pull.decide import Rules


@dataclass(frozen=True)
class PullOptions:
    pull: PullConfig
    mapping: MappingConfig
    lookback_days: int = 7
    mark_existing_done: bool = False
    retrieve_timeout_seconds: float = 600.0
    dimse_timeout_seconds: float = 30.0
    rules: Rules = Rules()

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
            lookback_days=pull.lookback_days,
            mark_existing_done=pull.mark_existing_done,
            retrieve_timeout_seconds=pull.retrieve_timeout_seconds,
            dimse_timeout_seconds=pull.dimse_timeout_seconds,
            rules=Rules(
                max_failures=pull.max_failures,
                retry_backoff_seconds=pull.retry_backoff_seconds,
                retry_backoff_max_seconds=pull.retry_backoff_max_seconds,
                forget_after_seconds=pull.forget_after_seconds,
            ),
        )
