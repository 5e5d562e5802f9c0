"""A routed turn in OpenAI's chat-completion shape: one definition for the server (as JSON) and the
SDK (as the ``openai`` package's types), so both say the same thing about the same answer.

Beside OpenAI's fields, every completion carries ``routing``: the router, its score and threshold
(``None`` when a model was named and routing bypassed), where the turn went and what it cost.
"""

from __future__ import annotations

import time
import uuid
from typing import Iterator

from routellm_demo.battles import STRONG, WEAK
from routellm_demo.routers import parse_router_model


def resolve_model(model: str, config) -> dict:
    """The routing keywords of :meth:`Controller.respond` for an OpenAI ``model`` name:
    ``router-<name>-<threshold>``, ``router-<name>-budget<percent>`` or ``router-<name>-cost<USD per
    1,000 requests>`` (budget mode), or a configured model's name or id (which bypasses routing).
    Raises UnknownRouterError."""
    for role in (STRONG, WEAK):
        spec = config.endpoint(role)
        if model in (spec.name, spec.model):
            return {"model_role": role}
    choice = parse_router_model(model)
    return {"router": choice.name, "threshold": choice.threshold, "budget": choice.budget, "cost_per_1k": choice.cost}


def new_id() -> tuple[str, int]:
    """A completion's id and creation time."""
    return "chatcmpl-" + uuid.uuid4().hex, int(time.time())


def routing(decision, answer=None) -> dict:
    out = {"router": decision.router, "threshold": decision.threshold, "score": decision.score,
           "routed_to": decision.role, "routed_on": decision.routed_on, "routing_ms": round(decision.routing_ms, 2)}
    if decision.budget is not None:
        out["budget"] = decision.budget
    if decision.cost_budget is not None:
        out["cost_budget_usd_per_1k"] = decision.cost_budget
    if answer is not None:
        # a fallback's lower cost is not a routing saving: saved_usd is 0 then, fallback_kind says why
        out.update(model=answer.model, cost_usd=answer.cost, strong_cost_usd=answer.strong_cost,
                   saved_usd=answer.saved, fallback_from=answer.fallback_from, fallback_kind=answer.fallback_kind,
                   dropped_messages=answer.dropped_messages)
    return out


def usage(answer) -> dict:
    return {"prompt_tokens": answer.prompt_tokens, "completion_tokens": answer.completion_tokens,
            "total_tokens": answer.prompt_tokens + answer.completion_tokens}


def completion(response) -> dict:
    """A finished :class:`~routellm_demo.response.Response` as a ``chat.completion`` object."""
    answer = response.answer()
    cid, created = new_id()
    return {
        "id": cid, "object": "chat.completion", "created": created, "model": answer.model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.text},
                     "finish_reason": answer.finish_reason or "stop", "logprobs": None}],
        "usage": usage(answer), "routing": routing(response.decision, answer),
    }


def chunks(response, *, include_usage: bool = False) -> Iterator[dict]:
    """A :class:`~routellm_demo.response.Response` as ``chat.completion.chunk`` objects: the role, the
    text pieces, the finish (with ``routing``), and with ``include_usage`` OpenAI's closing usage chunk.
    Each chunk names the model that writes the text (after a fallback, the other one)."""
    cid, created = new_id()
    response.start()  # a fallback happens before the first piece: from here on the writer is known

    def chunk(delta: dict, finish=None, **extra) -> dict:
        return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": response.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], **extra}

    yield chunk({"role": "assistant", "content": ""})
    for piece in response:
        yield chunk({"content": str(piece)})
    answer = response.answer()
    yield chunk({}, finish=answer.finish_reason or "stop", routing=routing(response.decision, answer))
    if include_usage:
        yield {"id": cid, "object": "chat.completion.chunk", "created": created, "model": answer.model,
               "choices": [], "usage": usage(answer), "routing": routing(response.decision, answer)}
