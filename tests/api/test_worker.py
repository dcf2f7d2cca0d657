"""The worker's workflow runner: the sandbox, answering serialization-context questions without entering it only
when nothing could use the answer."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import PayloadCodec
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from tempano.api.worker import workflow_runner


class _Reversing(PayloadCodec):
    """A codec whose behaviour could depend on the context (an encrypting codec keyed per workflow would)."""

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [Payload(metadata=p.metadata, data=p.data[::-1]) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [Payload(metadata=p.metadata, data=p.data[::-1]) for p in payloads]


def test_a_converter_without_codec_gets_the_constant_context_runner() -> None:
    runner = workflow_runner(pydantic_data_converter)
    assert not isinstance(runner, SandboxedWorkflowRunner)
    assert type(runner).__name__ == "_ConstantContextRunner"


def test_a_codec_keeps_the_plain_sandbox_so_it_sees_each_command_s_context() -> None:
    with_codec = dataclasses.replace(pydantic_data_converter, payload_codec=_Reversing())
    assert isinstance(workflow_runner(with_codec), SandboxedWorkflowRunner)
